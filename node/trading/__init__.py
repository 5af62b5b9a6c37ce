"""Order-book trading: pairs, orders, matching, market data."""
