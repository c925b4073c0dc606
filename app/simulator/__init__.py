"""Replaying simulator scenarios against MiniTwit, the way the course's simulator does.

- ``scenario``: the tab-separated scenario format (``Action``, parser, writer).
- ``generate``: a seeded synthetic scenario shaped like the real one.
- ``expected``: the state a scenario implies, and how to compare two states.
- ``replay``: request building, one-at-a-time replay, result accounting, and
  reading the final state back through the API.

The pieces are separate so that a concurrent runner can reuse the request
building and the accounting without the sequential loop.
"""
