"""The pieces of `safehold fetch` (sync/fetch.py): the plan from the server's signed log, the
bounds that hold against a hostile server, receipts by the page, bodies by the pack, and
consistency proofs computed from the leaves."""
