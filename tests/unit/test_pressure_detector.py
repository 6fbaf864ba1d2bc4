"""The pure pressure detector: windows, hysteresis, baselines, skips, stale/future samples, OOM."""

from __future__ import annotations

from dataclasses import replace

from autoscaler.observe.pressure import (
    Detection,
    Outcome,
    PodContext,
    PodPressureState,
    PressureSample,
    Thresholds,
    detect,
    detect_all,
    detect_series,
    pressures,
)

MiB = 1 << 20
T0 = 10_000.0
TH = Thresholds(psi_some_avg10=10.0, usage_ratio=0.9, psi_some_release=5.0, usage_ratio_release=0.8,
                consecutive_windows=2, window_s=1.0, startup_grace_s=60.0, cooldown_s=30.0, stale_after_s=15.0,
                use_total_rate=False)
RUNNING = PodContext(started_at=T0 - 3600)


def sample(t: float, *, psi: float = 0.0, wset: int = 100 * MiB, usage: int | None = None,
           limit: int | None = 1024 * MiB, identity: str = "id-1", agent: str = "agent-1", ooms: int = 0,
           total_us: int | None = None, pod: str = "w-1") -> PressureSample:
    return PressureSample(
        pod=pod, sampled_at=t, agent_sampled_at=t, identity=identity, agent_instance=agent, psi_some_avg10=psi,
        psi_full_avg10=psi / 2, psi_some_total_us=total_us, usage_bytes=usage if usage is not None else wset,
        working_set_bytes=wset, limit_bytes=limit, peak_usage_bytes=None, oom_kills_total=ooms,
    )


def run(samples: list[PressureSample], ctx: PodContext = RUNNING, th: Thresholds = TH,
        state: PodPressureState | None = None) -> list[Detection]:
    out = []
    for s in samples:
        d = detect(state, s, ctx, th, now=s.sampled_at + 0.2)
        state = d.state
        out.append(d)
    return out


def windows(dets: list[Detection]) -> list[int]:
    return [d.pressure.consecutive_windows if d.pressure else -1 for d in dets]


def test_fires_after_n_consecutive_windows_above_psi() -> None:
    dets = run([sample(T0 + i, psi=25.0) for i in range(3)])
    assert windows(dets) == [1, 2, 3]
    assert [d.fired(TH) for d in dets] == [False, True, True]
    assert all(d.outcome is Outcome.COUNTED for d in dets)
    p = dets[-1].pressure
    assert p is not None and p.pod == "w-1" and p.psi_some_avg10 == 25.0
    assert p.identity == "id-1" and p.skip_reason == ""


def test_usage_ratio_uses_working_set_so_page_cache_alone_is_not_pressure() -> None:
    cache_heavy = run([sample(T0 + i, wset=300 * MiB, usage=1000 * MiB) for i in range(3)])
    assert windows(cache_heavy) == [0, 0, 0]
    full = run([sample(T0 + i, wset=950 * MiB) for i in range(2)])
    assert windows(full) == [1, 2] and full[-1].fired(TH)
    p = full[-1].pressure
    assert p is not None and p.working_set_bytes == 950 * MiB and p.limit_bytes == 1024 * MiB


def test_unlimited_pod_only_uses_psi() -> None:
    assert windows(run([sample(T0 + i, wset=10**12, limit=None) for i in range(3)])) == [0, 0, 0]


def test_a_window_below_the_release_level_resets_and_one_in_the_band_holds() -> None:
    # 25 % (above) → 7 % (band: holds) → 25 % → 4 % (below release: reset) → 25 %
    dets = run([sample(T0, psi=25), sample(T0 + 1, psi=7), sample(T0 + 2, psi=25), sample(T0 + 3, psi=4),
                sample(T0 + 4, psi=25)])
    assert windows(dets) == [1, 1, 2, 0, 1]
    assert [d.outcome for d in dets] == [Outcome.COUNTED, Outcome.HELD, Outcome.COUNTED, Outcome.RESET,
                                         Outcome.COUNTED]


def test_hysteresis_keeps_a_firing_pod_firing_until_below_release() -> None:
    dets = run([sample(T0, psi=30), sample(T0 + 1, psi=30), sample(T0 + 2, psi=6, wset=850 * MiB),
                sample(T0 + 3, psi=6), sample(T0 + 4, psi=2, wset=700 * MiB)])
    assert [d.fired(TH) for d in dets] == [False, True, True, True, False]


def test_samples_closer_than_the_window_fold_into_it() -> None:
    dets = run([sample(T0, psi=25), sample(T0 + 0.3, psi=25), sample(T0 + 0.6, psi=25), sample(T0 + 1.0, psi=25)])
    assert windows(dets) == [1, 1, 1, 2]
    assert dets[1].outcome is Outcome.FOLDED
    assert dets[1].state is not None and dets[1].state.last_sampled_at == T0 + 0.3


def test_a_gap_longer_than_staleness_breaks_the_run() -> None:
    dets = run([sample(T0, psi=25), sample(T0 + 20, psi=25), sample(T0 + 21, psi=25)])
    assert windows(dets) == [1, 1, 2]


def test_identity_change_starts_a_new_baseline() -> None:
    dets = run([sample(T0, psi=25, wset=1000 * MiB), sample(T0 + 1, psi=25, wset=1000 * MiB),
                sample(T0 + 2, psi=25, identity="id-2", limit=2048 * MiB, wset=1000 * MiB)])
    assert windows(dets) == [1, 2, 1]
    assert dets[2].identity_changed and not dets[1].identity_changed
    assert dets[2].state is not None and dets[2].state.baseline_at == T0 + 2
    p = dets[2].pressure
    assert p is not None and p.identity == "id-2" and p.limit_bytes == 2048 * MiB


def test_peak_usage_is_tracked_per_identity() -> None:
    dets = run([sample(T0, wset=500 * MiB), sample(T0 + 1, wset=300 * MiB),
                replace(sample(T0 + 2, wset=200 * MiB), peak_usage_bytes=600 * MiB),
                sample(T0 + 3, wset=100 * MiB, identity="id-2")])
    peaks = [d.pressure.peak_usage_bytes for d in dets if d.pressure]
    assert peaks == [500 * MiB, 500 * MiB, 600 * MiB, 100 * MiB]


def test_oom_kill_is_an_immediate_signal() -> None:
    dets = run([sample(T0, ooms=3), sample(T0 + 1, ooms=3), sample(T0 + 2, ooms=4), sample(T0 + 3, ooms=4)])
    assert [d.new_oom_kills for d in dets] == [0, 0, 1, 0]  # the first sample is the baseline
    assert dets[2].fired(TH) and windows(dets)[2] == 0
    p = dets[3].pressure
    assert p is not None and p.oom_kills == 1 and p.last_oom_at == T0 + 2


def test_oom_that_restarted_the_container_is_carried_into_the_new_identity() -> None:
    dets = run([sample(T0, ooms=0), sample(T0 + 1, ooms=1, identity="id-restarted")])
    assert dets[1].identity_changed and dets[1].new_oom_kills == 1
    p = dets[1].pressure
    assert p is not None and p.oom_kills == 1 and p.last_oom_at == T0 + 1


def test_an_oom_kill_sets_the_peak_to_at_least_the_limit_so_the_pod_is_not_shrunk_below_it() -> None:
    carried = run([sample(T0, wset=300 * MiB), sample(T0 + 1, wset=50 * MiB, ooms=1, identity="id-restarted")])
    same = run([sample(T0, wset=300 * MiB), sample(T0 + 1, wset=200 * MiB, ooms=1)])
    for dets in (carried, same):
        p = dets[-1].pressure
        assert p is not None and p.oom_kills == 1 and p.peak_usage_bytes == 1024 * MiB


def test_a_restarted_agent_is_a_new_baseline_without_phantom_ooms() -> None:
    dets = run([sample(T0, ooms=5), sample(T0 + 1, ooms=0, agent="agent-2"), sample(T0 + 2, ooms=0, agent="agent-2")])
    assert dets[1].identity_changed and [d.new_oom_kills for d in dets] == [0, 0, 0]


def test_limit_change_after_oom_resets_the_oom_count() -> None:
    dets = run([sample(T0), sample(T0 + 1, ooms=1), sample(T0 + 2, ooms=1, identity="id-grown")])
    assert [d.pressure.oom_kills for d in dets if d.pressure] == [0, 1, 0]


def test_startup_grace_cooldown_and_in_flight_resize_are_skipped_with_a_reason() -> None:
    cases = [
        (PodContext(started_at=T0 - 10), Outcome.STARTUP_GRACE),
        (PodContext(started_at=T0 - 3600, last_resized_at=T0 - 5), Outcome.COOLDOWN),
        (PodContext(started_at=T0 - 3600, resize_in_flight=True), Outcome.RESIZE_IN_FLIGHT),
    ]
    for ctx, outcome in cases:
        dets = run([sample(T0 + i, psi=50, ooms=i // 2) for i in range(4)], ctx=ctx)
        assert [d.outcome for d in dets] == [outcome] * 4
        assert windows(dets) == [0, 0, 0, 0]
        p = dets[-1].pressure
        assert p is not None and p.skip_reason == outcome.value
        assert p.oom_kills == 1  # OOM kills are facts even while windows are not counted


def test_counting_starts_fresh_when_grace_ends() -> None:
    ctx = PodContext(started_at=T0 - 58)  # grace (60 s) ends at T0 + 2
    dets = run([sample(T0 + i, psi=50) for i in range(5)], ctx=ctx)
    assert windows(dets) == [0, 0, 1, 2, 3]
    assert dets[1].outcome is Outcome.STARTUP_GRACE and dets[2].outcome is Outcome.COUNTED


def test_stale_and_future_samples_are_dropped() -> None:
    state = run([sample(T0, psi=25)])[0].state
    stale = detect(state, sample(T0 + 1, psi=25), RUNNING, TH, now=T0 + 1 + 16)
    assert stale.outcome is Outcome.STALE and stale.pressure is None and stale.state == state
    future = detect(state, sample(T0 + 10, psi=25), RUNNING, TH, now=T0 + 1)
    assert future.outcome is Outcome.FUTURE and future.pressure is None and future.state == state
    none = detect(state, None, RUNNING, TH, now=T0 + 1)
    assert none.outcome is Outcome.NO_SAMPLE and none.state == state


def test_a_repeated_sample_does_not_count_twice() -> None:
    s = sample(T0, psi=25)
    first = detect(None, s, RUNNING, TH, now=T0)
    again = detect(first.state, s, RUNNING, TH, now=T0 + 3)
    assert again.outcome is Outcome.DUPLICATE and again.state == first.state
    assert again.pressure is not None and again.pressure.consecutive_windows == 1


def test_stall_rate_from_psi_totals_reacts_before_avg10() -> None:
    th = replace(TH, use_total_rate=True)
    # avg10 still 2 %, but 400 ms of stall per second: a 40 % stall rate.
    dets = run([sample(T0 + i, psi=2.0, total_us=400_000 * i) for i in range(3)], th=th)
    assert windows(dets) == [0, 1, 2] and dets[2].fired(th)
    assert abs(dets[2].stall_percent - 40.0) < 1e-9 and dets[0].stall_percent == 2.0
    p = dets[2].pressure
    assert p is not None and abs(p.stall_percent - 40.0) < 1e-9 and p.psi_some_avg10 == 2.0


def test_stall_rate_above_one_is_rejected_as_a_unit_mismatch() -> None:
    th = replace(TH, use_total_rate=True)
    dets = run([sample(T0, psi=2.0, total_us=0), sample(T0 + 1, psi=2.0, total_us=5_000_000)], th=th)
    assert dets[1].rate_rejected and windows(dets) == [0, 0]


def test_detect_series_folds_the_agent_history() -> None:
    series = [sample(T0 + i, psi=25) for i in range(3)]
    det = detect_series(None, series, RUNNING, TH, now=T0 + 3)
    assert det.pressure is not None and det.pressure.consecutive_windows == 3
    ooms = detect_series(det.state, [sample(T0 + 3, ooms=1), sample(T0 + 4, ooms=2)], RUNNING, TH, now=T0 + 5)
    assert ooms.new_oom_kills == 2


def test_detect_all_tracks_managed_pods_and_forgets_the_rest() -> None:
    ctxs = {"a": RUNNING, "b": RUNNING}
    states, dets = detect_all({}, {"a": [sample(T0, psi=25, pod="a")], "gone": [sample(T0, pod="gone")]}, ctxs, TH,
                              now=T0 + 1)
    assert set(states) == {"a"} and dets["b"].outcome is Outcome.NO_SAMPLE
    assert set(pressures(dets)) == {"a"}
    states2, dets2 = detect_all(states, {"a": [sample(T0 + 1, psi=25, pod="a")]}, {"a": RUNNING}, TH, now=T0 + 2)
    assert dets2["a"].fired(TH) and set(states2) == {"a"}


def test_detector_is_deterministic() -> None:
    series = [sample(T0 + i, psi=float(i * 7 % 30), ooms=i // 3, total_us=i * 100_000) for i in range(12)]
    th = replace(TH, use_total_rate=True)
    assert run(series, th=th) == run(series, th=th)
