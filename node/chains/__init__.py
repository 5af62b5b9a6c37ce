"""Chain adapters: one package per chain family behind node.chains.base."""
