"""The service layer: what MiniTwit does, independent of HTTP.

Both the web UI and the simulator API call these functions; they take and
return plain values, raise ``app.errors`` exceptions, and own every query.
"""
