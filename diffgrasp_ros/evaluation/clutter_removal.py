"""The simulated clutter-removal benchmark of VGN / GIGA / IGD.

A round: generate a pile or packed scene of ``objects_per_round`` objects (5 in the published
benchmark; fewer remain when some fall out of the workspace), then repeat perceive (render depth,
optionally noisy) -> plan -> execute (which removes what was lifted, and anything that left the
workspace). The round ends when the table is clear, after 2 consecutive failed grasps, or when the
planner finds no grasp.

Executors (``BenchmarkSettings.executor``): ``hand``, the published protocol, executes the best grasp
with the free-floating simulated hand; ``arm`` executes with the robot's whole arm
(``execution.arm_executor``): the best grasp that the arm reaches (grasp and pre-grasp IK) and for
which a collision-free pick plans is executed, and a ranked list with no such grasp counts as a
failed attempt.

Metrics, pooled over rounds: grasp success rate GSR = successful grasps / attempts; declutter rate
DR = objects removed by grasping / objects placed; planning latency (depth frames in -> ranked grasps
out: fusion + planning) p50 / p95 over all planning calls. With the arm also, per execution: the
reachability IK and motion-planning times (p50) and the fraction of ranked grasps the arm reaches.

Every round is rebuilt from its own seed in a fresh PyBullet world, so all methods of a run see
identical scenes, and a round's outcome does not depend on the rounds before it.

In parallel runs (``run_benchmark_parallel``) a round whose worker hangs past ``round_timeout_s`` (default
``default_round_timeout_s``) or dies is reported, its process replaced and the round run again once; a round
that fails twice is kept in the results marked ``END_WORKER_FAILED`` and left out of the metrics, and the
result counts the rounds re-run and marked.
"""
from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ..camera.frame import DepthError
from ..depth.processing import DepthProcessor
from ..execution import EXECUTORS, make_sim_executor
from ..grasping import GraspPlanner
from ..parallel import JobFailed, WorkerFailure, run_jobs
from ..sim.camera import view_poses
from ..sim.noise import NOISE_MODELS, apply_depth_noise
from ..sim.stereo import D435Simulator
from ..sim.object_set import ObjectModel
from ..sim.world import SCENE_KINDS, ClutterWorld

STEREO = "stereo"  # depth from the physically based D435 simulator (sim/stereo.py)
DEPTH_NOISE = (*NOISE_MODELS, STEREO)
# Object materials under stereo noise: all diffuse, or each object drawn from this mix (household
# clutter: mostly matte, some black plastic, metal and clear plastic or glass).
MATERIAL_MIXES: dict[str, dict[str, float]] = {
    "diffuse": {"diffuse": 1.0},
    "mixed": {"diffuse": 0.55, "dark": 0.15, "specular": 0.15, "transparent": 0.15},
}
DEPTH_MODES = ("passthrough", "restore")  # what happens to the sensor's depth before planning
MAX_CONSECUTIVE_FAILURES = 2
END_CLEAR, END_FAILURES, END_NO_GRASP = "table clear", "2 consecutive failures", "no grasp found"
END_WORKER_FAILED = "worker failed"  # timed out or died in every attempt: marked, not in the metrics
ATTEMPT_BUDGET_S = 60.0  # a grasp attempt's share of a round's time limit (measured: 1-3 s, README tables)


@dataclass(frozen=True)
class BenchmarkSettings:
    scene: str  # "pile" or "packed"
    rounds: int
    seed: int = 0
    views: str = "side"  # "side" or "multi"
    noise: str = "none"  # one of DEPTH_NOISE: sim.noise.NOISE_MODELS or "stereo" (the simulated D435)
    objects_per_round: int = 5
    executor: str = "hand"  # one of execution.EXECUTORS: "hand" (the published protocol) or "arm"
    materials: str = "diffuse"  # a MATERIAL_MIXES key; stereo noise only
    depth_mode: str = "passthrough"  # DEPTH_MODES: "restore" runs the learned restoration (models/depth_restore)
    leap_friction: float = 1.0  # the LEAP hand's hand-object friction (0.2: DexGraspNet's strict value)
    device: str = "auto"  # of the depth restoration, and of the planners that workers build (resolve_device)

    def __post_init__(self):
        if self.scene not in SCENE_KINDS:
            raise ValueError(f"unknown scene kind {self.scene!r}: choose one of {SCENE_KINDS}")
        if self.rounds < 1:
            raise ValueError(f"the benchmark needs at least one round, got {self.rounds}")
        if self.objects_per_round < 1:
            raise ValueError(f"a round needs at least one object, got {self.objects_per_round}")
        if self.noise not in DEPTH_NOISE:
            raise ValueError(f"unknown depth noise model {self.noise!r}: choose one of {list(DEPTH_NOISE)}")
        if self.materials not in MATERIAL_MIXES:
            raise ValueError(f"unknown material mix {self.materials!r}: choose one of {list(MATERIAL_MIXES)}")
        if self.materials != "diffuse" and self.noise != STEREO:
            raise ValueError(f"materials {self.materials!r} need stereo noise: only the D435 simulator "
                             "renders materials")
        if self.depth_mode not in DEPTH_MODES:
            raise ValueError(f"unknown depth mode {self.depth_mode!r}: choose one of {list(DEPTH_MODES)}")
        if self.executor not in EXECUTORS:
            raise ValueError(f"unknown executor {self.executor!r}: choose one of {list(EXECUTORS)}")
        if not self.leap_friction > 0:
            raise ValueError(f"the LEAP hand's friction must be positive, got {self.leap_friction}")
        view_poses(self.views)  # validates the view mode


@dataclass(frozen=True)
class RoundResult:
    index: int
    scene_seed: int
    objects_placed: int
    attempts: int
    successes: int  # each removes one object
    end: str  # END_CLEAR, END_FAILURES, END_NO_GRASP or END_WORKER_FAILED (then end_message says why)
    planning_s: tuple[float, ...]  # one per perception -> grasps call
    duration_s: float  # the whole round, scene generation included
    stage_s: tuple[dict[str, float], ...] = ()  # the planner's own timings per call (fusion, encoder, ...)
    end_message: str = ""  # the planner's message when the round ended on "no grasp found"
    # Arm executor only, one entry per execution: reachability IK and motion-planning wall time, how
    # many grasps were ranked and how many of them the arm reaches.
    ik_s: tuple[float, ...] = ()
    motion_planning_s: tuple[float, ...] = ()
    grasps_ranked: tuple[int, ...] = ()
    grasps_reachable: tuple[int, ...] = ()
    # Per attempt, in order: the executed grasp's score (the planner's quality) and whether it held. A
    # threshold on the score ends a round at its first attempt below it, so one run without a threshold
    # gives every threshold's rates (``threshold_sweep``).
    attempt_scores: tuple[float, ...] = ()
    attempt_successes: tuple[bool, ...] = ()
    attempt_outcomes: tuple[str, ...] = ()  # per attempt, ``attempt_outcome``: "held" or why it failed


@dataclass(frozen=True)
class MethodSummary:
    method: str
    rounds: int
    objects_placed: int
    objects_removed: int
    attempts: int
    successes: int
    gsr: float | None  # None when nothing was attempted
    dr: float | None  # None when nothing was placed
    latency_p50_s: float | None
    latency_p95_s: float | None
    seconds_per_round: float
    stage_p50_s: dict[str, float] = field(default_factory=dict)  # median of each planner timing over calls
    # Arm executor only (None otherwise), over executions: medians of the reachability IK, the motion
    # planning and their sum; reachable grasps / ranked grasps, pooled.
    ik_p50_s: float | None = None
    motion_planning_p50_s: float | None = None
    arm_planning_p50_s: float | None = None
    reachable_fraction: float | None = None
    rounds_failed: int = 0  # marked END_WORKER_FAILED, in none of the figures above
    outcomes: dict[str, int] = field(default_factory=dict)  # attempts by ``attempt_outcome``, most first

    @classmethod
    def from_rounds(cls, method: str, rounds: Sequence[RoundResult]) -> "MethodSummary":
        failed = sum(r.end == END_WORKER_FAILED for r in rounds)
        rounds = [r for r in rounds if r.end != END_WORKER_FAILED]
        placed = sum(r.objects_placed for r in rounds)
        attempts = sum(r.attempts for r in rounds)
        successes = sum(r.successes for r in rounds)
        latencies = [s for r in rounds for s in r.planning_s]
        p50 = float(np.percentile(latencies, 50)) if latencies else None
        p95 = float(np.percentile(latencies, 95)) if latencies else None
        stages: dict[str, list[float]] = {}
        for timings in (t for r in rounds for t in r.stage_s):
            for stage, seconds in timings.items():
                stages.setdefault(stage, []).append(seconds)
        ik = np.array([s for r in rounds for s in r.ik_s])
        motion = np.array([s for r in rounds for s in r.motion_planning_s])
        ranked = sum(n for r in rounds for n in r.grasps_ranked)

        def median(values: np.ndarray) -> float | None:
            return float(np.median(values)) if len(values) else None

        return cls(method, len(rounds), placed, successes, attempts, successes,
                   successes / attempts if attempts else None, successes / placed if placed else None,
                   p50, p95, float(np.mean([r.duration_s for r in rounds])) if rounds else 0.0,
                   {stage: float(np.median(values)) for stage, values in stages.items()},
                   median(ik), median(motion), median(ik + motion),
                   sum(n for r in rounds for n in r.grasps_reachable) / ranked if ranked else None, failed,
                   dict(Counter(o for r in rounds for o in r.attempt_outcomes).most_common()))


@dataclass
class BenchmarkResult:
    settings: BenchmarkSettings
    objects: str  # which object set
    rounds: dict[str, list[RoundResult]]  # by method, in round order
    round_timeout_s: float | None = None  # parallel runs: a round's time limit in its worker
    worker_failures: list[WorkerFailure] = field(default_factory=list)  # ``job``: the round's index

    @property
    def summaries(self) -> dict[str, MethodSummary]:
        return {m: MethodSummary.from_rounds(m, r) for m, r in self.rounds.items()}

    @property
    def rounds_rerun(self) -> int:
        """Rounds run again after their worker timed out or died."""
        return len({f.job for f in self.worker_failures if f.rerun})

    @property
    def rounds_failed(self) -> int:
        """Rounds given up after every attempt failed (marked ``END_WORKER_FAILED``)."""
        return len({f.job for f in self.worker_failures if not f.rerun})

    def to_dict(self) -> dict:
        return {"settings": asdict(self.settings), "objects": self.objects,
                "summary": {m: asdict(s) for m, s in self.summaries.items()},
                "workers": {"round_timeout_s": self.round_timeout_s, "rounds_rerun": self.rounds_rerun,
                            "rounds_failed": self.rounds_failed,
                            "failures": [asdict(f) for f in self.worker_failures]},
                "rounds": {m: [asdict(r) for r in rs] for m, rs in self.rounds.items()}}


def make_depth_processor(settings: BenchmarkSettings) -> DepthProcessor | None:
    """The depth processing of ``settings.depth_mode`` (None: the planner gets the sensor's depth)."""
    return None if settings.depth_mode == "passthrough" else DepthProcessor(settings.depth_mode,
                                                                            device=settings.device)


def round_seed(seed: int, index: int) -> int:
    """The scene seed of round ``index``: independent streams per round, the same for every method."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


@dataclass
class Clearing:
    """How clearing one table went."""

    attempts: int = 0
    successes: int = 0
    end: str = ""
    planning_s: list[float] = field(default_factory=list)
    stage_s: list[dict[str, float]] = field(default_factory=list)
    end_message: str = ""
    ik_s: list[float] = field(default_factory=list)  # the arm executor's, per execution
    motion_planning_s: list[float] = field(default_factory=list)
    grasps_ranked: list[int] = field(default_factory=list)
    grasps_reachable: list[int] = field(default_factory=list)
    attempt_scores: list[float] = field(default_factory=list)
    attempt_successes: list[bool] = field(default_factory=list)
    attempt_outcomes: list[str] = field(default_factory=list)


def attempt_outcome(report) -> str:
    """An executor's report as a kind of outcome: "held", the executor's reason with its measured figures left
    out (so reasons count together), or for the arm "no pick planned" (grasps reached, no pick planned for the
    best of them) or "no grasp reachable"."""
    if report.outcome is not None:
        reason = report.outcome.reason
        return ("held without the thumb against a finger" if reason.endswith("not thumb against a finger")
                else re.sub(r" \d+(\.\d+)? m\b", "", reason))
    return "no grasp reachable" if getattr(report, "reachable", 1) == 0 else "no pick planned"


def draw_materials(world: ClutterWorld, mix: str, rng: np.random.Generator) -> dict[int, str]:
    """A material per object of ``world`` (body id -> ``sim.stereo.MATERIALS`` name) drawn from ``mix``."""
    names, weights = zip(*MATERIAL_MIXES[mix].items())
    return {body: names[i] for body, i in zip(world.object_ids, rng.choice(len(names), len(world.object_ids),
                                                                           p=np.array(weights) / sum(weights)))}


def clear_table(world: ClutterWorld, planner: GraspPlanner, settings: BenchmarkSettings,
                rng: np.random.Generator, materials: dict[int, str] | None = None,
                processor: DepthProcessor | None = None) -> Clearing:
    """Perceive, plan and pick in ``world`` until the round ends. With the arm executor a ranked list
    with no grasp the arm reaches and plans a pick for is a failed attempt. ``materials`` (body id ->
    material) is what the stereo sensor sees; ``processor`` processes each depth frame before planning
    (its time counts as planning time, stage "depth")."""
    executor = make_sim_executor(settings.executor, world, planner.robot, settings.leap_friction)
    poses = view_poses(settings.views)
    # The stereo sensor needs the world, not a rendered image: it renders both IR views and matches them.
    stereo = D435Simulator(world.p, seed=int(rng.integers(2**31))) if settings.noise == STEREO else None
    clearing = Clearing()
    failures = 0
    while True:
        if world.num_objects == 0:
            clearing.end = END_CLEAR
            return clearing
        if failures >= MAX_CONSECUTIVE_FAILURES:
            clearing.end = END_FAILURES
            return clearing
        if settings.noise == STEREO:
            present = {body: name for body, name in (materials or {}).items() if body in world.object_ids}
            frames = [stereo.render(T, present).to_depth_frame(world.camera.frame_id) for T in poses]
        else:
            frames = [apply_depth_noise(world.camera.render(T).depth, settings.noise, rng) for T in poses]
        depth_s = 0.0
        if processor is not None:
            start = time.perf_counter()
            try:
                frames = [processor.process(frame) for frame in frames]
            except DepthError as error:  # nothing usable: the round ends as a planner's "no grasp" would
                clearing.end, clearing.end_message = END_NO_GRASP, f"depth processing: {error}"
                return clearing
            depth_s = time.perf_counter() - start
        start = time.perf_counter()
        plan = planner.plan_from_depth(frames, poses)
        clearing.planning_s.append(time.perf_counter() - start + depth_s)
        clearing.stage_s.append({**({"depth": depth_s} if processor is not None else {}), **plan.timings_s})
        if not plan.found:
            clearing.end, clearing.end_message = END_NO_GRASP, plan.message
            return clearing
        report = executor.execute(plan)
        clearing.attempts += 1
        clearing.successes += report.success
        clearing.attempt_scores.append(float(plan.best.score))
        clearing.attempt_successes.append(bool(report.success))
        clearing.attempt_outcomes.append(attempt_outcome(report))
        failures = 0 if report.success else failures + 1
        if settings.executor == "arm":
            clearing.ik_s.append(report.reachability_time_s)
            clearing.motion_planning_s.append(report.motion_planning_time_s)
            clearing.grasps_ranked.append(report.ranked)
            clearing.grasps_reachable.append(report.reachable)


def run_round(objects: Sequence[ObjectModel], planner: GraspPlanner, settings: BenchmarkSettings,
              index: int, processor: DepthProcessor | None = None) -> RoundResult:
    start = time.perf_counter()
    seed = round_seed(settings.seed, index)
    with ClutterWorld(objects, seed=seed) as world:
        placed = world.generate(settings.scene, settings.objects_per_round)
        # Noise and material draws depend on the round (and the perception count within it), not on the method.
        rng = np.random.default_rng([settings.seed, index, 1])
        materials = (draw_materials(world, settings.materials, np.random.default_rng([settings.seed, index, 2]))
                     if settings.noise == STEREO else None)
        clearing = clear_table(world, planner, settings, rng, materials, processor)
    return RoundResult(index, seed, placed, clearing.attempts, clearing.successes, clearing.end,
                       tuple(clearing.planning_s), time.perf_counter() - start, tuple(clearing.stage_s),
                       clearing.end_message, tuple(clearing.ik_s), tuple(clearing.motion_planning_s),
                       tuple(clearing.grasps_ranked), tuple(clearing.grasps_reachable),
                       tuple(clearing.attempt_scores), tuple(clearing.attempt_successes),
                       tuple(clearing.attempt_outcomes))


def run_benchmark(planners: Mapping[str, GraspPlanner], objects: Sequence[ObjectModel],
                  settings: BenchmarkSettings, objects_name: str = "",
                  on_round: Callable[[int, dict[str, RoundResult]], None] | None = None) -> BenchmarkResult:
    """Every method on the same ``settings.rounds`` scenes; ``on_round(index, results by method)``
    is called after each round (progress)."""
    if not planners:
        raise ValueError("no grasp planning method to benchmark")
    if not objects:
        raise ValueError("the benchmark needs at least one object model")
    import open3d  # noqa: F401  (1.4 s to load: before the first round, so latencies are steady-state)

    processor = make_depth_processor(settings)
    rounds: dict[str, list[RoundResult]] = {name: [] for name in planners}
    for index in range(settings.rounds):
        this_round = {name: run_round(objects, planner, settings, index, processor)
                      for name, planner in planners.items()}
        for name, result in this_round.items():
            rounds[name].append(result)
        if on_round is not None:
            on_round(index, this_round)
    return BenchmarkResult(settings, objects_name, rounds)


# -- parallel rounds --------------------------------------------------------------------------------
_worker_planners: dict[str, GraspPlanner] = {}
_worker_processors: dict[str, DepthProcessor | None] = {}


def _init_worker(methods: Sequence[str], robot: str, device: str) -> None:
    import torch

    from ..grasping import device_option, make_planner

    torch.set_num_threads(1)
    _worker_planners.update({method: make_planner(method, robot, **device_option(method, device))
                             for method in methods})


def _worker_round(objects: Sequence[ObjectModel], settings: BenchmarkSettings,
                  index: int) -> tuple[int, dict[str, RoundResult]]:
    if settings.depth_mode not in _worker_processors:
        _worker_processors[settings.depth_mode] = make_depth_processor(settings)
    processor = _worker_processors[settings.depth_mode]
    return index, {name: run_round(objects, planner, settings, index, processor)
                   for name, planner in _worker_planners.items()}


def default_round_timeout_s(settings: BenchmarkSettings, methods: int) -> float:
    """A round's time limit in a worker, from the work: every method's attempts (at most the objects plus the
    failures that end a round, as a budget) at ``ATTEMPT_BUDGET_S`` each, tripled for the arm executor (IK and
    motion planning) and doubled for stereo depth and for the learned restoration: 20-60 times the measured
    round times (3-15 s per method with the hand)."""
    per_attempt = ATTEMPT_BUDGET_S * (3.0 if settings.executor == "arm" else 1.0) \
        * (2.0 if settings.noise == STEREO else 1.0) * (2.0 if settings.depth_mode == "restore" else 1.0)
    return methods * (settings.objects_per_round + MAX_CONSECUTIVE_FAILURES) * per_attempt


def failed_round(index: int, settings: BenchmarkSettings, failure: JobFailed) -> RoundResult:
    """The mark of a round whose worker timed out or died in every attempt (no figures: it is left out)."""
    reasons = "; ".join(f.reason for f in failure.failures)
    return RoundResult(index, round_seed(settings.seed, index), 0, 0, 0, END_WORKER_FAILED, (),
                       sum(f.seconds for f in failure.failures), end_message=f"{len(failure.failures)} attempt(s): {reasons}")


def run_benchmark_parallel(methods: Sequence[str], robot: str, objects: Sequence[ObjectModel],
                           settings: BenchmarkSettings, workers: int, objects_name: str = "",
                           on_round: Callable[[int, dict[str, RoundResult]], None] | None = None,
                           round_timeout_s: float | None = None, log: Callable[[str], None] | None = None,
                           round_function: Callable = _worker_round) -> BenchmarkResult:
    """``run_benchmark`` with rounds spread over ``workers`` single-threaded processes, each building the
    planners from their method specs (``grasping.parse_method``) on ``settings.device``. Rounds derive from
    (seed, index) alone, so the outcomes equal a sequential run's; latencies are those of one core per process.

    A round still running after ``round_timeout_s`` (default ``default_round_timeout_s``), or whose process
    died, is reported through ``log`` (default: stderr), its process replaced and the round run again once;
    a round failing twice is marked ``END_WORKER_FAILED`` for every method (``failed_round``).
    ``round_function(objects, settings, index)`` is what a worker runs for a round (a fault can be injected
    there; it must be importable by the workers)."""
    if not methods:
        raise ValueError("no grasp planning method to benchmark")
    if not objects:
        raise ValueError("the benchmark needs at least one object model")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    limit = default_round_timeout_s(settings, len(methods)) if round_timeout_s is None else float(round_timeout_s)
    result = BenchmarkResult(settings, objects_name, {}, limit)
    by_index: dict[int, dict[str, RoundResult]] = {}
    for index, this_round in run_jobs(
            round_function, [(objects, settings, i) for i in range(settings.rounds)], workers, limit,
            initializer=_init_worker, initargs=(list(methods), robot, settings.device),
            describe=lambda i: f"{settings.scene} round {i} (scene seed {round_seed(settings.seed, i)})",
            log=log, on_failure=result.worker_failures.append):
        if isinstance(this_round, JobFailed):
            this_round = {method: failed_round(index, settings, this_round) for method in methods}
        else:
            index, this_round = this_round
        by_index[index] = this_round
        if on_round is not None:
            on_round(index, this_round)
    result.rounds = {method: [by_index[i][method] for i in range(settings.rounds)] for method in methods}
    return result
