"""The simulator API: a thin JSON layer over the service layer (contract: simulator-api.md)."""
