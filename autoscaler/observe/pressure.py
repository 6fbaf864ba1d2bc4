"""Controller side of memory pressure: scrape the rva agents of managed pods, and detect pressure.

* ``AgentScraper`` fetches ``/v1/pressure`` from each pod's agent (pod IP + port from the
  ``rva.ray.io/agent-port`` annotation or a container port named ``rva-agent``), with bounded
  concurrency, per-request timeouts and staleness marking. Agent timestamps are moved onto the
  controller's clock with the offset between the agent's ``now`` and the time the reply arrived.
* ``detect`` is pure (no I/O, the clock is an argument): per pod state + a sample → new state and a
  ``model.Pressure``. VPA's detector rules (peers-and-user-requests.md §3.2): N consecutive windows
  above the PSI or the usage-ratio threshold, hysteresis (reset only below lower thresholds), a new
  baseline on container restart or limit change, skips during startup grace / cooldown / an
  outstanding resize, stale and future samples dropped, stall rates above 1 rejected. OOM kills are
  counted at once, whatever the windows say.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import aiohttp

from autoscaler.model import Pressure

AGENT_PORT_ANNOTATION = "rva.ray.io/agent-port"
AGENT_PORT_NAME = "rva-agent"

# --------------------------------------------------------------------------------------------------
# Samples (parsed agent replies)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PressureSample:
    """One agent sample of a pod's primary cgroup, on the controller's clock."""

    pod: str
    sampled_at: float  # controller clock
    agent_sampled_at: float  # agent clock (used for rates: both ends on one clock)
    identity: str
    agent_instance: str
    psi_some_avg10: float | None
    psi_full_avg10: float | None
    psi_some_total_us: int | None
    usage_bytes: int | None
    working_set_bytes: int | None
    limit_bytes: int | None
    peak_usage_bytes: int | None  # max usage the agent saw under this identity
    oom_kills_total: int  # agent-lifetime count, survives container restarts in sidecar mode


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def parse_agent_document(pod: str, doc: Mapping[str, Any], received_at: float) -> tuple[PressureSample, ...]:
    """Samples in a ``/v1/pressure`` reply, oldest first. Raises ValueError/KeyError/TypeError if malformed."""
    if int(doc.get("version", 0)) != 1:
        raise ValueError(f"unsupported agent document version {doc.get('version')!r}")
    offset = received_at - float(doc["now"])
    instance = str(doc["agent"]["instance"])
    out = []
    for h in doc.get("samples", ()):
        t = float(h["sampled_at"])
        out.append(PressureSample(
            pod=pod, sampled_at=t + offset, agent_sampled_at=t, identity=str(h["identity"]),
            agent_instance=instance, psi_some_avg10=_opt_float(h.get("psi_some_avg10")),
            psi_full_avg10=_opt_float(h.get("psi_full_avg10")), psi_some_total_us=_opt_int(h.get("psi_some_total_us")),
            usage_bytes=_opt_int(h.get("usage_bytes")), working_set_bytes=_opt_int(h.get("working_set_bytes")),
            limit_bytes=_opt_int(h.get("limit_bytes")), peak_usage_bytes=_opt_int(h.get("peak_usage_bytes")),
            oom_kills_total=int(h.get("oom_kills_total") or 0),
        ))
    return tuple(sorted(out, key=lambda s: s.agent_sampled_at))


# --------------------------------------------------------------------------------------------------
# Scraper
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentEndpoint:
    pod: str
    namespace: str
    url: str  # http://<pod IP>:<port>


def agent_endpoint(pod: Mapping[str, Any]) -> AgentEndpoint | None:
    """Where a pod's agent listens (a Kubernetes Pod as a dict), or None (no IP yet, or no agent)."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    ip = status.get("podIP")
    port: int | None = None
    annotated = (meta.get("annotations") or {}).get(AGENT_PORT_ANNOTATION)
    if annotated is not None:
        try:
            port = int(annotated)
        except ValueError:
            port = None
    if port is None:  # native sidecars are initContainers with restartPolicy: Always
        for c in [*(spec.get("containers") or ()), *(spec.get("initContainers") or ())]:
            for p in c.get("ports") or ():
                if p.get("name") == AGENT_PORT_NAME and p.get("containerPort"):
                    port = int(p["containerPort"])
    if not ip or port is None or not 0 < port < 65536:
        return None
    host = f"[{ip}]" if ":" in ip else ip
    return AgentEndpoint(str(meta.get("name", "")), str(meta.get("namespace", "")), f"http://{host}:{port}")


@dataclass(frozen=True, slots=True)
class ScrapeResult:
    pod: str
    scraped_at: float
    samples: tuple[PressureSample, ...]  # new since the last successful scrape, oldest first
    latest: PressureSample | None  # newest known sample, possibly from an earlier scrape
    stale: bool  # no sample, or the newest is older than stale_after_s
    error: str = ""  # why this scrape failed ("" on success)
    latency_s: float = 0.0

    def for_detector(self) -> tuple[PressureSample, ...]:
        """The new samples, or the newest known one again (the detector reports it as a duplicate, so
        the pod keeps its Pressure while the agent has nothing new; staleness still drops it)."""
        return self.samples or ((self.latest,) if self.latest is not None else ())


class AgentScraper:
    """Scrapes many agents at once; remembers each pod's newest sample to fetch only what is new."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        concurrency: int = 32,
        timeout_s: float = 2.0,
        stale_after_s: float = 15.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self._sem = asyncio.Semaphore(concurrency)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._stale_after = stale_after_s
        self._clock = clock
        self._latest: dict[str, PressureSample] = {}

    async def scrape(self, endpoints: Iterable[AgentEndpoint]) -> dict[str, ScrapeResult]:
        eps = list(endpoints)
        keep = {e.pod for e in eps}
        for pod in list(self._latest):  # forget pods that are gone: memory stays bounded
            if pod not in keep:
                del self._latest[pod]
        results = await asyncio.gather(*(self.scrape_one(e) for e in eps))
        return {r.pod: r for r in results}

    async def scrape_one(self, ep: AgentEndpoint) -> ScrapeResult:
        prev = self._latest.get(ep.pod)
        params = {"since": repr(prev.agent_sampled_at)} if prev is not None else {}
        async with self._sem:
            started = self._clock()
            try:
                async with self._session.get(ep.url + "/v1/pressure", params=params, timeout=self._timeout) as resp:
                    if resp.status != 200:
                        raise ValueError(f"HTTP {resp.status}")
                    doc = await resp.json(content_type=None)
                received = self._clock()
                samples = parse_agent_document(ep.pod, doc, received)
                error = ""
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as e:
                received, samples, error = self._clock(), (), f"{type(e).__name__}: {e}".rstrip(": ")
        if prev is not None and samples and samples[0].agent_instance != prev.agent_instance:
            prev = None  # a restarted agent: its clock offset and counters start over
        samples = tuple(s for s in samples if prev is None or s.agent_sampled_at > prev.agent_sampled_at)
        latest = samples[-1] if samples else prev
        if latest is not None:
            self._latest[ep.pod] = latest
        stale = latest is None or received - latest.sampled_at > self._stale_after
        return ScrapeResult(ep.pod, received, samples, latest, stale, error, received - started)


# --------------------------------------------------------------------------------------------------
# Detector (pure)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Detector parameters (the daemon maps the policy's ``memoryPressure`` section onto these)."""

    psi_some_avg10: float = 10.0  # percent; a window at or above counts
    usage_ratio: float = 0.9  # working set / limit; a window at or above counts
    psi_some_release: float = 5.0  # hysteresis: the count resets only below both release levels
    usage_ratio_release: float = 0.8
    consecutive_windows: int = 2
    window_s: float = 1.0  # samples closer than this to the last counted window update, not count
    startup_grace_s: float = 120.0
    cooldown_s: float = 60.0
    stale_after_s: float = 15.0
    future_tolerance_s: float = 2.0
    #: also judge the stall rate from PSI ``total`` between two samples (VPA's signal); avg10 lags ~10 s.
    use_total_rate: bool = True


@dataclass(frozen=True, slots=True)
class PodContext:
    """What the kube side knows about the pod, for the skip rules."""

    started_at: float | None = None  # Ray container start (startup grace)
    last_resized_at: float | None = None  # end of the last resize (cooldown)
    resize_in_flight: bool = False


@dataclass(frozen=True, slots=True)
class PodPressureState:
    identity: str
    agent_instance: str
    baseline_at: float
    last_sampled_at: float
    last_agent_sampled_at: float
    last_window_at: float
    windows: int
    oom_total_seen: int
    oom_kills: int  # since the baseline, plus the kills that ended the previous identity
    last_oom_at: float | None
    peak_usage_bytes: int
    last_some_total_us: int | None


class Outcome(str, Enum):
    COUNTED = "counted"  # a window above a threshold
    HELD = "held"  # between the release and the trigger levels: the count holds (hysteresis)
    RESET = "reset"  # below the release levels
    FOLDED = "folded"  # closer than window_s to the last window: values updated, count unchanged
    DUPLICATE = "duplicate"  # not newer than the last sample seen
    NO_SAMPLE = "no_sample"
    STALE = "stale"
    FUTURE = "future"
    STARTUP_GRACE = "startup_grace"
    COOLDOWN = "cooldown"
    RESIZE_IN_FLIGHT = "resize_in_flight"


RATE_TOLERANCE = 1.05  # sampling jitter can push an honest rate a little over 1


@dataclass(frozen=True, slots=True)
class Detection:
    state: PodPressureState | None
    pressure: Pressure | None  # None when the sample was dropped and nothing is known
    outcome: Outcome
    identity_changed: bool = False
    rate_rejected: bool = False  # a stall rate > 1: unit mismatch or clock trouble; avg10 used alone
    new_oom_kills: int = 0
    stall_percent: float = 0.0  # the PSI 'some' value judged: max(avg10, rate from totals)
    usage_ratio: float = 0.0  # the working set / limit judged (0 when unlimited)

    def fired(self, th: Thresholds) -> bool:
        p = self.pressure
        return p is not None and (p.consecutive_windows >= th.consecutive_windows or self.new_oom_kills > 0)


def _baseline(s: PressureSample) -> PodPressureState:
    return PodPressureState(
        identity=s.identity, agent_instance=s.agent_instance, baseline_at=s.sampled_at, last_sampled_at=-math.inf,
        last_agent_sampled_at=-math.inf, last_window_at=-math.inf, windows=0, oom_total_seen=s.oom_kills_total,
        oom_kills=0, last_oom_at=None, peak_usage_bytes=0, last_some_total_us=None,
    )


def _pressure(st: PodPressureState, s: PressureSample, skip: str = "", stall: float | None = None) -> Pressure:
    return Pressure(
        pod=s.pod, sampled_at=s.sampled_at, psi_some_avg10=s.psi_some_avg10 or 0.0,
        psi_full_avg10=s.psi_full_avg10 or 0.0, usage_bytes=s.usage_bytes or 0, limit_bytes=s.limit_bytes,
        peak_usage_bytes=st.peak_usage_bytes, consecutive_windows=st.windows, oom_kills=st.oom_kills,
        last_oom_at=st.last_oom_at, identity=s.identity, working_set_bytes=s.working_set_bytes or 0,
        skip_reason=skip, stall_percent=stall if stall is not None else s.psi_some_avg10 or 0.0,
    )


def stall_percent(st: PodPressureState, s: PressureSample, th: Thresholds) -> tuple[float, bool]:
    """(PSI 'some' percent to judge, rate rejected?): the larger of avg10 and the rate since the last sample."""
    avg10 = s.psi_some_avg10 or 0.0
    if not th.use_total_rate or st.last_some_total_us is None or s.psi_some_total_us is None:
        return avg10, False
    dt = s.agent_sampled_at - st.last_agent_sampled_at
    if dt <= 0:
        return avg10, False
    rate = (s.psi_some_total_us - st.last_some_total_us) / (dt * 1e6)
    if rate < 0 or rate > RATE_TOLERANCE:
        return avg10, True
    return max(avg10, min(rate, 1.0) * 100), False


def detect(
    state: PodPressureState | None, sample: PressureSample | None, ctx: PodContext, th: Thresholds, now: float
) -> Detection:
    """Advance one pod's detector by one sample. Pure: same inputs, same output."""
    if sample is None:
        return Detection(state, None, Outcome.NO_SAMPLE)
    if sample.sampled_at > now + th.future_tolerance_s:
        return Detection(state, None, Outcome.FUTURE)
    if now - sample.sampled_at > th.stale_after_s:
        return Detection(state, None, Outcome.STALE)

    # New baseline on restart / limit change (identity) or a restarted agent (its counters start over).
    changed = state is not None and (
        state.identity != sample.identity or state.agent_instance != sample.agent_instance
    )
    st = state
    carried = 0
    if st is None or changed:
        if st is not None and st.agent_instance == sample.agent_instance:
            carried = max(0, sample.oom_kills_total - st.oom_total_seen)  # kills that ended the old identity
        st = _baseline(sample)
        if carried:  # usage reached the limit when it was killed: the new identity's peak starts there
            st = replace(st, oom_kills=carried, last_oom_at=sample.sampled_at,
                         peak_usage_bytes=max(st.peak_usage_bytes, sample.limit_bytes or 0))
    elif sample.agent_sampled_at <= st.last_agent_sampled_at:
        return Detection(st, _pressure(st, sample), Outcome.DUPLICATE)

    new_ooms = carried + max(0, sample.oom_kills_total - st.oom_total_seen)
    if sample.oom_kills_total > st.oom_total_seen:
        st = replace(st, oom_kills=st.oom_kills + sample.oom_kills_total - st.oom_total_seen,
                     last_oom_at=sample.sampled_at, peak_usage_bytes=max(st.peak_usage_bytes, sample.limit_bytes or 0))
    pct, rejected = stall_percent(st, sample, th)
    usage = sample.usage_bytes or 0
    st = replace(
        st, oom_total_seen=sample.oom_kills_total, last_sampled_at=sample.sampled_at,
        last_agent_sampled_at=sample.agent_sampled_at, last_some_total_us=sample.psi_some_total_us,
        peak_usage_bytes=max(st.peak_usage_bytes, usage, sample.peak_usage_bytes or 0),
    )

    limit = sample.limit_bytes
    wset = sample.working_set_bytes if sample.working_set_bytes is not None else usage
    ratio = wset / limit if limit else 0.0

    def result(st: PodPressureState, outcome: Outcome, skip: str = "") -> Detection:
        return Detection(st, _pressure(st, sample, skip, pct), outcome, changed, rejected, new_ooms, pct, ratio)

    skip = _skip_reason(ctx, th, now)
    if skip is not None:
        st = replace(st, windows=0, last_window_at=sample.sampled_at)
        return result(st, skip, skip.value)

    if sample.sampled_at - st.last_window_at < th.window_s * 0.9:  # 10 %: timer jitter of a 1 s agent
        return result(st, Outcome.FOLDED)
    windows = st.windows if sample.sampled_at - st.last_window_at <= th.stale_after_s else 0  # gap: start over
    if pct >= th.psi_some_avg10 or ratio >= th.usage_ratio:
        windows, outcome = windows + 1, Outcome.COUNTED
    elif pct < th.psi_some_release and ratio < th.usage_ratio_release:
        windows, outcome = 0, Outcome.RESET
    else:
        outcome = Outcome.HELD
    st = replace(st, windows=windows, last_window_at=sample.sampled_at)
    return result(st, outcome)


def _skip_reason(ctx: PodContext, th: Thresholds, now: float) -> Outcome | None:
    if ctx.resize_in_flight:
        return Outcome.RESIZE_IN_FLIGHT
    if ctx.last_resized_at is not None and now - ctx.last_resized_at < th.cooldown_s:
        return Outcome.COOLDOWN
    if ctx.started_at is not None and now - ctx.started_at < th.startup_grace_s:
        return Outcome.STARTUP_GRACE
    return None


def detect_series(
    state: PodPressureState | None, samples: Sequence[PressureSample], ctx: PodContext, th: Thresholds, now: float
) -> Detection:
    """Fold a scrape's new samples (oldest first) through ``detect``; the last detection summarises them.

    OOM kills, identity changes and rejected rates seen anywhere in the series are kept in the result.
    """
    if not samples:
        return detect(state, None, ctx, th, now)
    det: Detection | None = None
    ooms, changed, rejected = 0, False, False
    for s in samples:
        det = detect(state, s, ctx, th, now)
        state = det.state
        ooms += det.new_oom_kills
        changed = changed or det.identity_changed
        rejected = rejected or det.rate_rejected
    assert det is not None
    return replace(det, identity_changed=changed, rate_rejected=rejected, new_oom_kills=ooms)


def detect_all(
    states: Mapping[str, PodPressureState],
    samples: Mapping[str, Sequence[PressureSample]],
    contexts: Mapping[str, PodContext],
    th: Thresholds,
    now: float,
) -> tuple[dict[str, PodPressureState], dict[str, Detection]]:
    """One detector step for every managed pod (the keys of ``contexts``); state of other pods is dropped."""
    new_states: dict[str, PodPressureState] = {}
    detections: dict[str, Detection] = {}
    for pod, ctx in contexts.items():
        det = detect_series(states.get(pod), samples.get(pod, ()), ctx, th, now)
        detections[pod] = det
        if det.state is not None:
            new_states[pod] = det.state
    return new_states, detections


def pressures(detections: Mapping[str, Detection]) -> dict[str, Pressure]:
    """The ``Snapshot.pressure`` mapping: pods with a usable sample this step."""
    return {pod: d.pressure for pod, d in detections.items() if d.pressure is not None}
