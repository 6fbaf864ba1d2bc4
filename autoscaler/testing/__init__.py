"""Helpers for tests of the deployment artefacts: rendered manifests, RBAC rules, Prometheus, dashboards.

Importable by any test suite (unit, e2e) so the end-to-end tests stay short:

* :mod:`autoscaler.testing.manifests` — ``render("base")``: the objects ``kubectl kustomize`` renders.
* :mod:`autoscaler.testing.rbac_rules` — the rendered Role/ClusterRole rules as data or YAML, for the
  simulated API server's RBAC (``autoscaler.sim.rbac.Rbac.from_yaml(rbac_yaml())``).
* :mod:`autoscaler.testing.rules` — the PrometheusRule's groups as a plain promtool rules file.
* :mod:`autoscaler.testing.prometheus` — start a real Prometheus on loopback scraping given targets,
  ``check_dashboard_queries`` (every panel query and variable returns data) and
  ``promtool_check_metrics``.
* :mod:`autoscaler.testing.lockfile` — ``requirements.lock`` for the Docker image (generate / check).
"""
