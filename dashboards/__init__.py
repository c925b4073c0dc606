"""MiniTwit's Grafana dashboards, written in Python with grafanalib.

One module per dashboard (``overview``, ``domain``, ``slo``, ``runtime``), the
panel helpers they share in ``common``, and ``render``, which writes the JSON
Grafana loads to ``dashboards/rendered/<uid>.json``::

    .venv/bin/python -m dashboards.render          # write the JSON
    .venv/bin/python -m dashboards.render --check  # exit 1 if the committed JSON is stale

Every metric a panel queries must be one the app exports
(``app/observability/metrics.py``); ``tests/test_metric_names.py`` holds the
dashboards to that.
"""
