"""``/bj_api_sync/metrics``: the module's state in Prometheus' text exposition format (0.0.4).

Requests by configuration, direction and status and their duration histograms are counted over
the logs still kept (``bj_api_sync.log_retention_days``): a purge makes the counters drop, which
Prometheus' ``rate()`` reads as a counter reset. Queue depth, oldest pending job and paused
configurations are gauges. Five queries whatever the number of configurations.
"""

import math

from odoo.tools import SQL

TOKEN_PARAM = "bj_api_sync.metrics_token"
# seconds; Prometheus' conventional unit
BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels):
    return "{%s}" % ",".join('%s="%s"' % (key, _escape(value)) for key, value in labels.items())


def _number(value):
    if isinstance(value, float):
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return repr(value)
    return str(value)


def render(env):
    """The metrics text (env: superuser)."""
    cr = env.cr
    env["bj.api.log"].flush_model()
    env["bj.api.sync.job"].flush_model()
    env["bj.api.sync.config"].flush_model()
    cr.execute("SELECT id, name, request_type, paused, active FROM bj_api_sync_config ORDER BY id")
    configs = {row[0]: row[1:] for row in cr.fetchall()}

    def config_labels(config_id):
        name = configs.get(config_id, ("", None))[0] if config_id else ""
        return {"config": name or "", "config_id": config_id or ""}

    buckets = SQL(", ").join(
        SQL("count(*) FILTER (WHERE duration_ms <= %s)", int(bucket * 1000)) for bucket in BUCKETS
    )
    cr.execute(SQL(
        "SELECT config_id, direction, status, count(*), coalesce(sum(duration_ms), 0), %s "
        "FROM bj_api_log GROUP BY config_id, direction, status ORDER BY config_id, direction, status",
        buckets,
    ))
    request_rows = cr.fetchall()
    cr.execute(
        """
        SELECT config_id, state, count(*),
               extract(epoch FROM (now() AT TIME ZONE 'UTC') - min(create_date))
          FROM bj_api_sync_job WHERE state IN ('pending', 'running', 'failed')
         GROUP BY config_id, state ORDER BY config_id, state
        """
    )
    job_rows = cr.fetchall()

    out = []
    out.append("# HELP bj_api_sync_requests_total API requests logged (in: served, out: sent), over the kept logs.")
    out.append("# TYPE bj_api_sync_requests_total counter")
    histograms = {}
    for config_id, direction, status, count, total_ms, *buckets in request_rows:
        out.append("bj_api_sync_requests_total%s %d" % (
            _labels(**config_labels(config_id), direction=direction or "", status=status or ""), count))
        histogram = histograms.setdefault((config_id, direction), [0, 0, [0] * len(BUCKETS)])
        histogram[0] += count
        histogram[1] += total_ms
        histogram[2] = [a + b for a, b in zip(histogram[2], buckets, strict=True)]
    out.append("# HELP bj_api_sync_request_duration_seconds Duration of the logged API requests.")
    out.append("# TYPE bj_api_sync_request_duration_seconds histogram")
    for (config_id, direction), (count, total_ms, buckets) in histograms.items():
        labels = dict(config_labels(config_id), direction=direction or "")
        for bucket, value in zip(BUCKETS, buckets, strict=True):
            out.append(
                "bj_api_sync_request_duration_seconds_bucket%s %d" % (_labels(**labels, le=_number(bucket)), value)
            )
        out.append("bj_api_sync_request_duration_seconds_bucket%s %d" % (_labels(**labels, le="+Inf"), count))
        out.append("bj_api_sync_request_duration_seconds_sum%s %s" % (_labels(**labels), _number(total_ms / 1000.0)))
        out.append("bj_api_sync_request_duration_seconds_count%s %d" % (_labels(**labels), count))

    depth, oldest, failed = {}, {}, {}
    for config_id, state, count, age in job_rows:
        if state == "failed":
            failed[config_id] = count
            continue
        depth[config_id] = depth.get(config_id, 0) + count
        oldest[config_id] = max(oldest.get(config_id, 0.0), float(age or 0))
    out.append("# HELP bj_api_sync_queue_depth Sync jobs pending or running.")
    out.append("# TYPE bj_api_sync_queue_depth gauge")
    out.append("# HELP bj_api_sync_oldest_pending_job_age_seconds Age of the oldest pending or running job.")
    out.append("# TYPE bj_api_sync_oldest_pending_job_age_seconds gauge")
    out.append("# HELP bj_api_sync_failed_jobs Sync jobs failed for good.")
    out.append("# TYPE bj_api_sync_failed_jobs gauge")
    out.append("# HELP bj_api_sync_config_paused 1 when the configuration is paused (by hand or circuit breaker).")
    out.append("# TYPE bj_api_sync_config_paused gauge")
    for config_id, (_name, request_type, paused, active) in configs.items():
        if not active:
            continue
        labels = _labels(**config_labels(config_id))
        if request_type == "out":
            out.append("bj_api_sync_queue_depth%s %d" % (labels, depth.get(config_id, 0)))
            out.append("bj_api_sync_oldest_pending_job_age_seconds%s %s" % (
                labels, _number(round(oldest.get(config_id, 0.0), 3))))
            out.append("bj_api_sync_failed_jobs%s %d" % (labels, failed.get(config_id, 0)))
        out.append("bj_api_sync_config_paused%s %d" % (labels, 1 if paused else 0))
    return "\n".join(out) + "\n"
