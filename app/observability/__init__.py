"""Signals MiniTwit emits: metrics, structured logs, and the request middleware that feeds both.

Metric names and log field names are defined here once; dashboards, alert
rules, the Logstash pipeline, the index template and the Kibana searches are
built from, or tested against, these definitions.
"""
