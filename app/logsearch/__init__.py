"""Searching MiniTwit's logs: Elasticsearch setup, Kibana objects and ``minitwit logs``.

- ``mappings``: the index template (mappings built from
  ``app.observability.logs.FIELDS``) and the ILM policy, with elasticsearch-dsl.
- ``setup``: ``minitwit logs setup`` applies them and imports ``kibana/*.ndjson``.
- ``search``: ``minitwit logs search`` builds an elasticsearch-dsl query and prints events.
- ``settings``: where Elasticsearch and Kibana are, from the environment.

Nothing here is imported by the web app: ``minitwit serve`` never loads the
Elasticsearch client.
"""
