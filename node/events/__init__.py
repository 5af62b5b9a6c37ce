"""Trade events: the outbox written with each change of a trade
(``outbox``), the Server-Sent Events fan-out (``sse``), and webhooks signed
with HMAC-SHA256 and retried with backoff (``signing``, ``webhooks``)."""
