"""Herald's Grafana dashboards, as data: each a :class:`Board` of rows of :class:`Chart`
panels, their PromQL written once here (``generate.py`` turns them into Grafana's JSON).

- ``overview``: the whole deployment on one screen;
- ``platform``: one platform (``$platform``): outcomes, latency, lateness, limits, versions;
- ``region``: one region (``$region``): its processes, backlog, throughput and latency, by
  joining every series to ``herald_process_info`` on the scrape's ``job`` and ``instance``;
- ``limits``: rate limits and quotas: grants, waits, quota use against its allowance.

Only the names of the metrics contract (docs/operations.md, "Metrics") appear. Several
processes export the same store-wide gauges (read from the database at scrape time), so those
are taken with ``max``, never summed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["DASHBOARDS", "RATE", "Board", "Chart"]

#: The window of every rate: Grafana's own, at least four scrapes wide.
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Chart:
    """One panel: a title, its queries as ``(PromQL, legend)`` and how to show them."""

    title: str
    queries: Sequence[tuple[str, str]]
    unit: str = "short"
    description: str = ""
    kind: str = "timeseries"  # or "stat": one figure, the latest
    width: int = 8


@dataclass(frozen=True)
class Board:
    uid: str
    title: str
    description: str
    rows: Sequence[tuple[str, Sequence[Chart]]]
    #: Template variables: (name, label, PromQL label_values query).
    variables: Sequence[tuple[str, str, str]] = field(default=())


def _quantiles(metric: str, by: str, selector: str = "", join: str = "") -> list[tuple[str, str]]:
    """p50, p95 and p99 of a histogram, per ``by``, over the rate window."""
    rate = f"rate({metric}_bucket{selector}[{RATE}]){join}"
    return [
        (f"histogram_quantile({q}, sum by ({by}, le) ({rate}))", f"p{int(q * 100)} {{{{{by}}}}}")
        for q in (0.5, 0.95, 0.99)
    ]


#: Multiplies a series by 1 when its process is in ``$region`` (drops it when not): how series
#: without a region label are read per region.
IN_REGION = ' * on (job, instance) group_left herald_process_info{region="$region"}'

_OUTCOMES = Chart(
    "Deliveries by outcome",
    [(f"sum by (outcome) (rate(herald_deliveries_total[{RATE}]))", "{{outcome}}")],
    unit="ops",
    description="Delivery steps finished per second: published, retry, failed, unconfirmed...",
)

OVERVIEW = Board(
    uid="herald-overview",
    title="Herald / Overview",
    description="The whole deployment: processes, throughput, latency, backlogs and health.",
    rows=[
        (
            "Processes",
            [
                Chart(
                    "Processes by role",
                    [("count by (role) (herald_process_info)", "{{role}}")],
                    kind="stat",
                ),
                Chart(
                    "Versions running",
                    [("count by (version) (herald_process_info)", "{{version}}")],
                    kind="stat",
                ),
                Chart(
                    "Dependencies up (lowest over processes)",
                    [
                        ("min(herald_store_up)", "store"),
                        ("min(herald_broker_up)", "broker"),
                        ("min(herald_limiter_up)", "limiter"),
                    ],
                    kind="stat",
                    description="1: every process reaches it; 0: at least one does not.",
                ),
            ],
        ),
        (
            "Publishing",
            [
                _OUTCOMES,
                Chart(
                    "Publish duration p95 by platform",
                    _quantiles("herald_publish_duration_seconds", "platform")[1:2],
                    unit="s",
                    description="Request sent to the platform's answer.",
                ),
                Chart(
                    "Lateness p95: due to sent, due to published",
                    [
                        *(
                            (expr, "sent " + legend)
                            for expr, legend in _quantiles(
                                "herald_delivery_sent_lateness_seconds", "platform"
                            )[1:2]
                        ),
                        *(
                            (expr, "published " + legend)
                            for expr, legend in _quantiles(
                                "herald_delivery_lateness_seconds", "platform"
                            )[1:2]
                        ),
                    ],
                    unit="s",
                ),
            ],
        ),
        (
            "Backlogs",
            [
                Chart(
                    "Deliveries in the store by state",
                    [("max by (state) (herald_store_deliveries)", "{{state}}")],
                    description="Read from the database at scrape time by API and engines.",
                ),
                Chart(
                    "Broker backlog by platform and region",
                    [
                        (
                            "max by (platform, region) (herald_queue_backlog)",
                            "{{platform}} {{region}}",
                        )
                    ],
                    description="Jobs no worker has read yet: what the autoscaler reads.",
                ),
                Chart(
                    "In flight and unconfirmed",
                    [
                        ("sum(herald_in_flight_deliveries)", "in flight"),
                        ("sum(herald_queue_depth)", "engine queues"),
                        ('max(herald_store_deliveries{state="unconfirmed"})', "unconfirmed"),
                    ],
                ),
            ],
        ),
        (
            "API and webhooks",
            [
                Chart(
                    "API requests by status",
                    [(f"sum by (status) (rate(herald_api_requests_total[{RATE}]))", "{{status}}")],
                    unit="reqps",
                ),
                Chart(
                    "API duration p95 by route",
                    _quantiles("herald_api_request_duration_seconds", "route")[1:2],
                    unit="s",
                ),
                Chart(
                    "Webhooks: outbox and deliveries",
                    [
                        ("max(herald_webhook_backlog)", "pending"),
                        (
                            f"sum by (outcome) (rate(herald_webhook_deliveries_total[{RATE}]))",
                            "{{outcome}} /s",
                        ),
                    ],
                ),
            ],
        ),
        (
            "Trouble",
            [
                Chart(
                    "Platform outages",
                    [("max by (platform) (herald_platform_outage)", "{{platform}}")],
                    description="1 while every request to the platform is paused.",
                ),
                Chart(
                    "Channels waiting for new credentials",
                    [("max by (platform) (herald_channels_needing_reauth)", "{{platform}}")],
                ),
                Chart(
                    "Recovered and retried work",
                    [
                        (
                            f"sum by (kind) (rate(herald_lease_recoveries_total[{RATE}]))",
                            "lease {{kind}}",
                        ),
                        (
                            f"sum by (task) (rate(herald_store_unavailable_total[{RATE}]))",
                            "store retried {{task}}",
                        ),
                        (
                            f"sum by (operation) (rate(herald_broker_errors_total[{RATE}]))",
                            "broker error {{operation}}",
                        ),
                    ],
                    unit="ops",
                ),
            ],
        ),
    ],
)

_P = '{platform="$platform"}'

PLATFORM = Board(
    uid="herald-platform",
    title="Herald / Platform",
    description="One platform: outcomes, latency, lateness, limits and API versions.",
    variables=[("platform", "Platform", "label_values(herald_deliveries_total, platform)")],
    rows=[
        (
            "Outcomes",
            [
                Chart(
                    "Deliveries by outcome",
                    [
                        (
                            f"sum by (outcome) (rate(herald_deliveries_total{_P}[{RATE}]))",
                            "{{outcome}}",
                        )
                    ],
                    unit="ops",
                ),
                Chart(
                    "Retries, waits, requests not sent",
                    [
                        (f"sum(rate(herald_retries_total{_P}[{RATE}]))", "retries"),
                        (f"sum(rate(herald_rate_limit_waits_total{_P}[{RATE}]))", "limit waits"),
                        (f"sum(rate(herald_requests_not_sent_total{_P}[{RATE}]))", "not sent"),
                    ],
                    unit="ops",
                ),
                Chart(
                    "Outage and credentials",
                    [
                        (f"max(herald_platform_outage{_P})", "outage"),
                        (f"max(herald_channels_needing_reauth{_P})", "channels needing reauth"),
                    ],
                ),
            ],
        ),
        (
            "Latency",
            [
                Chart(
                    "Publish duration",
                    _quantiles("herald_publish_duration_seconds", "platform", _P),
                    unit="s",
                ),
                Chart(
                    "Lateness: due to sent",
                    _quantiles("herald_delivery_sent_lateness_seconds", "platform", _P),
                    unit="s",
                ),
                Chart(
                    "Lateness: due to published",
                    _quantiles("herald_delivery_lateness_seconds", "platform", _P),
                    unit="s",
                ),
            ],
        ),
        (
            "Queue and versions",
            [
                Chart(
                    "Broker backlog by region",
                    [(f"max by (region) (herald_queue_backlog{_P})", "{{region}}")],
                ),
                Chart(
                    "Days until the API version retires",
                    [
                        (
                            f"min by (version) (herald_platform_version_retires_in_days{_P})",
                            "{{version}}",
                        )
                    ],
                    unit="d",
                    kind="stat",
                ),
                Chart(
                    "Version warnings",
                    [
                        (
                            "sum by (version, reason) "
                            f"(increase(herald_platform_version_warnings_total{_P}[1h]))",
                            "{{version}} {{reason}}",
                        )
                    ],
                    description="Warnings in the last hour: retiring, retired, upgraded, refused.",
                ),
            ],
        ),
    ],
)

REGION = Board(
    uid="herald-region",
    title="Herald / Region",
    description="One region: its processes, broker backlog, throughput and latency.",
    variables=[("region", "Region", "label_values(herald_process_info, region)")],
    rows=[
        (
            "Processes and backlog",
            [
                Chart(
                    "Processes by role",
                    [('count by (role) (herald_process_info{region="$region"})', "{{role}}")],
                    kind="stat",
                ),
                Chart(
                    "Broker backlog by platform",
                    [
                        (
                            'max by (platform) (herald_queue_backlog{region="$region"})',
                            "{{platform}}",
                        )
                    ],
                ),
                Chart(
                    "Broker and limiter reachable",
                    [
                        (f"min(herald_broker_up{IN_REGION})", "broker"),
                        (f"min(herald_limiter_up{IN_REGION})", "limiter"),
                    ],
                    kind="stat",
                ),
            ],
        ),
        (
            "Publishing",
            [
                Chart(
                    "Deliveries by outcome",
                    [
                        (
                            f"sum by (outcome) (rate(herald_deliveries_total[{RATE}]){IN_REGION})",
                            "{{outcome}}",
                        )
                    ],
                    unit="ops",
                ),
                Chart(
                    "Publish duration p95 by platform",
                    _quantiles("herald_publish_duration_seconds", "platform", join=IN_REGION)[1:2],
                    unit="s",
                ),
                Chart(
                    "Lateness p95 (due to published) by platform",
                    _quantiles("herald_delivery_lateness_seconds", "platform", join=IN_REGION)[1:2],
                    unit="s",
                ),
            ],
        ),
        (
            "Load",
            [
                Chart(
                    "In flight by process",
                    [(f"herald_in_flight_deliveries{IN_REGION}", "{{instance}}")],
                ),
                Chart(
                    "Rate-limit waits by platform",
                    [
                        (
                            "sum by (platform) "
                            f"(rate(herald_rate_limit_waits_total[{RATE}]){IN_REGION})",
                            "{{platform}}",
                        )
                    ],
                    unit="ops",
                ),
                Chart(
                    "Limiter grants by platform",
                    [
                        (
                            "sum by (platform) "
                            f"(rate(herald_rate_limit_grants_total[{RATE}]){IN_REGION})",
                            "{{platform}}",
                        )
                    ],
                    unit="ops",
                ),
            ],
        ),
    ],
)

LIMITS = Board(
    uid="herald-limits",
    title="Herald / Limits and quotas",
    description="Rate limits and quotas: admissions, waits and each rule's use of its allowance.",
    rows=[
        (
            "Quotas",
            [
                Chart(
                    "Quota used / allowed, by platform and rule",
                    [
                        (
                            "max by (platform, rule) (herald_quota_used) "
                            "/ max by (platform, rule) (herald_quota_allowed)",
                            "{{platform}} {{rule}}",
                        )
                    ],
                    unit="percentunit",
                    description="The busiest key of each rule; above 0.9 the quota is nearly"
                    " spent.",
                    width=12,
                ),
                Chart(
                    "Quota used and allowed",
                    [
                        (
                            "max by (platform, rule) (herald_quota_used)",
                            "used {{platform}} {{rule}}",
                        ),
                        (
                            "max by (platform, rule) (herald_quota_allowed)",
                            "allowed {{platform}} {{rule}}",
                        ),
                    ],
                    width=12,
                ),
            ],
        ),
        (
            "Rate limits",
            [
                Chart(
                    "Admissions granted by platform",
                    [
                        (
                            f"sum by (platform) (rate(herald_rate_limit_grants_total[{RATE}]))",
                            "{{platform}}",
                        )
                    ],
                    unit="ops",
                ),
                Chart(
                    "Waits for a limit by platform",
                    [
                        (
                            f"sum by (platform) (rate(herald_rate_limit_waits_total[{RATE}]))",
                            "{{platform}}",
                        )
                    ],
                    unit="ops",
                ),
                Chart(
                    "Shared limiter",
                    [
                        ("min(herald_limiter_up)", "up (lowest)"),
                        (f"sum(rate(herald_limiter_errors_total[{RATE}]))", "errors /s"),
                    ],
                ),
            ],
        ),
    ],
)

DASHBOARDS: dict[str, Board] = {
    "overview": OVERVIEW,
    "platform": PLATFORM,
    "region": REGION,
    "limits": LIMITS,
}
