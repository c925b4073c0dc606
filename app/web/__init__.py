"""The classic MiniTwit web UI: server-rendered pages (contract: web-ui.md)."""
