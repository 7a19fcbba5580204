"""What every diffgrasp lifecycle node shares: declared parameters, activity, errors that never kill it."""
from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.impl import rcutils_logger as _rcutils_logger
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.impl.logging_severity import LoggingSeverity
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

# What the library raises for bad input, missing or unreadable files, unavailable devices and failing
# dependencies (DepthError, ModelFormatError, TableNotFoundError, ... are ValueErrors). Anything else
# that reaches a node's outer handlers is a bug: still reported, as an internal error with its traceback.
EXPECTED_ERRORS = (ValueError, LookupError, OSError, RuntimeError, ImportError)
REPORT_PERIOD_S = 2.0  # one log line per call site this often at most
# Default input limits (node parameters max_image_pixels, max_name_length; see declare_input_limits).
MAX_IMAGE_PIXELS = 1920 * 1080
MAX_NAME_LENGTH = 256
# Cleanup waits this long for running callbacks (a plan, a call to another node) before it destroys the
# entities they use; the executor's own wait for the grasp server is bounded by service_timeout_s.
CALLBACK_DRAIN_S = 20.0


def describe_error(error: BaseException) -> str:
    """What went wrong, for a log line, ``last_error`` or an answer: sanitised (see ``sanitise``)."""
    if isinstance(error, EXPECTED_ERRORS):
        return sanitise(str(error))
    return sanitise(f"internal error {type(error).__name__}: {error} (a bug; its traceback is in the log)")


# -- what leaves the process: no host paths, no environment values -----------------------------------------
# Every text a node sends (service answers, last_error, log lines: the node logger's lines also go out on
# /rosout, file and line included) goes through ``sanitise``:
# - an absolute path under the package, its share folder or a Python import root (site-packages) becomes
#   relative to it (``diffgrasp_ros/nodes/base.py``, ``models/igd/config.json``, ``rclpy/node.py``): tracebacks
#   stay readable and say nothing about where the host keeps them;
# - any other absolute path becomes ``<path>/`` + its file name (``<path>/recording.mcap``): the name is what a
#   user needs to recognise it; the folders (a home folder's user name, a mount layout) stay on the host;
# - the value of an environment variable, as a whole word, becomes ``$NAME``: 8 characters or more, or 4 or more
#   for a name that looks secret (TOKEN, SECRET, PASSWORD, KEY, CREDENTIAL, AUTH, COOKIE) unless the value is a
#   short plain word (RAY_AUTH_MODE=token would otherwise turn every "token" into "$RAY_AUTH_MODE").
# A token starting with "/" is a path when it holds a character no ROS name has (".", "-", ...) or its first
# folder is one of the host's top-level folders; ROS names (``/robot1/plan_grasp``, ``/tf_static``) stay.
_PATH_TOKEN = re.compile(r"(?<![\w.~$\->])/[^\s'\"`(),;:<>\[\]{}|]*")
_ROS_NAME = re.compile(r"[/\w~{}]*")
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|PASSPHRASE|KEY|CREDENTIAL|AUTH|COOKIE|PRIVATE", re.IGNORECASE)
_ENV_MIN_LENGTH, _SECRET_MIN_LENGTH = 8, 4
_env_cache: tuple[frozenset, re.Pattern | None, dict] = (frozenset(), None, {})


@functools.lru_cache(maxsize=1)
def _path_roots() -> tuple[tuple[str, ...], frozenset]:
    """(folders a path is shown relative to, longest first; the host's top-level folder names)."""
    from ..share import share_dir

    package = Path(__file__).resolve().parents[2]  # holds diffgrasp_ros/
    roots = {str(package), str(share_dir())}
    roots |= {os.path.realpath(p) for p in sys.path if p and os.path.isabs(p) and os.path.isdir(p)}
    roots = {r.rstrip("/") for r in roots if r.count("/") >= 2}  # never "/" or a top-level folder itself
    try:
        top = frozenset(name for name in os.listdir("/") if not name.startswith("."))
    except OSError:
        top = frozenset()
    return tuple(sorted(roots, key=len, reverse=True)), top | {"home", "root", "tmp", "usr", "opt", "var", "etc",
                                                                "mnt", "media", "srv", "run", "proc", "dev", "sys"}


def short_path(path: str) -> str:
    """An absolute path as ``sanitise`` shows it: relative to the package, its share folder or an import root;
    else ``<path>/`` and its file name."""
    roots, _ = _path_roots()
    for root in roots:
        if path.startswith(root + "/"):
            return path[len(root) + 1:]
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return f"<path>/{name}" if name else "<path>"


def _shorten_token(match: re.Match) -> str:
    token = match.group(0)
    stripped = token.rstrip(".")  # a path at the end of a sentence
    tail = token[len(stripped):]
    if len(stripped) < 2:
        return token
    _, top = _path_roots()
    first = stripped[1:].split("/", 1)[0]
    if _ROS_NAME.fullmatch(stripped) and first not in top and not any(
            stripped.startswith(root + "/") or stripped == root for root in _path_roots()[0]):
        return token  # a ROS name (topic, service, namespace), not a file
    return short_path(stripped) + tail


def _environment_pattern() -> tuple[re.Pattern | None, dict]:
    global _env_cache
    items = frozenset(os.environ.items())
    if items != _env_cache[0]:
        names: dict[str, str] = {}
        for name, value in items:
            if len(value) >= _ENV_MIN_LENGTH or (_SECRET_NAME.search(name) and len(value) >= _SECRET_MIN_LENGTH
                                                 and not value.isalpha()):
                names.setdefault(value, name)
        values = sorted(names, key=len, reverse=True)
        pattern = (re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, values)) + r")(?!\w)") if values else None)
        _env_cache = (items, pattern, names)
    return _env_cache[1], _env_cache[2]


def sanitise(text: str) -> str:
    """``text`` without the host's absolute paths and environment values (the rule above)."""
    text = _PATH_TOKEN.sub(_shorten_token, str(text))  # first: a path under $HOME is a path, not "$HOME/..."
    pattern, names = _environment_pattern()
    return text if pattern is None else pattern.sub(lambda m: f"${names[m.group(0)]}", text)


class SanitisedLogger(_rcutils_logger.RcutilsLogger):
    """The node's logger with every line ``sanitise``d and the caller's file shown as ``short_path`` (rcutils
    puts both in the /rosout message). rclpy's own ``log`` takes the caller's file as it is, so this one does
    what it does (call site, severity per call site, the throttle/once/skip_first filters) with that changed."""

    def log(self, message, severity, name=None, **kwargs) -> bool:
        if not self.is_enabled_for(severity):
            return False
        severity = LoggingSeverity(severity)
        name = self.name if name is None else name
        caller = _rcutils_logger.CallerId(_caller_outside_logging(sys._getframe(1)))
        filters = _rcutils_logger.get_filters_from_kwargs(**kwargs)
        context = self.contexts.get(caller)
        if context is None:
            context = {"name": name, "severity": severity, "filters": filters}
            for kind in filters:
                _rcutils_logger.supported_filters[kind].initialize_context(context, **kwargs)
            self.contexts[caller] = context
        elif (severity, name, filters) != (context["severity"], context["name"], context["filters"]):
            raise ValueError("Logger severity, name and filters cannot be changed between calls.")
        for kind in context["filters"]:
            if not _rcutils_logger.supported_filters[kind].should_log(context):
                return False
        _rclpy.rclpy_logging_rcutils_log(severity, name, sanitise(message), caller.function_name,
                                         short_path(caller.file_path), caller.line_number)
        return True

    def get_child(self, name: str) -> "SanitisedLogger":
        child = super().get_child(name)
        sanitised = SanitisedLogger(child.name)
        # The rosout sublogger is removed when its logger goes: the one handed out owns it.
        sanitised.logger_sublogger_namepair, child.logger_sublogger_namepair = child.logger_sublogger_namepair, None
        return sanitised


def _caller_outside_logging(frame):
    """From ``frame`` (the caller of ``SanitisedLogger.log``) the first frame outside rclpy's logger: the call
    site rclpy would take."""
    while frame is not None and frame.f_code.co_filename == _rcutils_logger.RcutilsLogger.info.__code__.co_filename:
        frame = frame.f_back
    if frame is None:
        raise ValueError("Cannot get frame info if frame is None")
    return frame


class DiffgraspNode(LifecycleNode):
    """A lifecycle node whose transitions are cheap to repeat and whose callbacks report, not raise.

    Subclasses declare parameters in ``__init__``, build library objects and ROS entities in
    ``configure`` and tear them down in ``cleanup``; ``activate``/``deactivate`` only start and stop
    work, so configure → activate → deactivate → cleanup → configure again always works.
    """

    def __init__(self, name: str, **kwargs):
        super().__init__(name, **kwargs)
        self.callback_group = ReentrantCallbackGroup()
        self._active = threading.Event()
        self._entities: list = []
        self.last_error = ""
        self._report_lock = threading.Lock()
        self._reported: dict[str, tuple[float, int]] = {}  # call site -> (last logged, suppressed since)
        self._running = 0  # callbacks under way (guarded, services)
        self._callbacks_done = threading.Condition()
        # Every line of the node's logger is sanitised, the lines of subclasses and of rclpy's Node too.
        self._logger = SanitisedLogger(self._logger.name)

    # -- parameters --------------------------------------------------------------------------------
    def declare(self, name: str, default: Any, description: str, read_only: bool = False) -> None:
        self.declare_parameter(name, default, ParameterDescriptor(description=description, read_only=read_only))

    def param(self, name: str) -> Any:
        return self.get_parameter(name).value

    def now_s(self) -> float:
        """The node's clock in seconds: wall time, or /clock under use_sim_time. Stamps and ages use it."""
        return self.get_clock().now().nanoseconds * 1e-9

    def declare_workspace(self) -> None:
        """The workspace parameters shared by the nodes that work in the workspace frame."""
        self.declare("workspace_frame", "workspace", "frame of the workspace cube (origin at a corner, z up)")
        self.declare("workspace_size_m", 0.30, "edge of the workspace cube")
        self.declare("table_height_m", 0.05, "table top height in the workspace frame")

    def declare_input_limits(self) -> None:
        """The size limits of the nodes that take depth images: what is over them is refused and reported
        before it is converted (``conversions.check_image_size``, ``check_camera_info``)."""
        self.declare("max_image_pixels", MAX_IMAGE_PIXELS, "depth image (and CameraInfo) width x height at most; "
                     "default 1920x1080 = 2,073,600: over every RealSense depth mode (D4xx, D405: 1280x720; "
                     "L515: 1024x768) and 1080p, so a camera never meets it, while a 4000x3000 frame (48 MB as "
                     "32FC1, seconds of processing) is refused")
        self.declare("max_name_length", MAX_NAME_LENGTH, "characters per frame id, encoding or distortion model "
                     "at most (ROS names stay under 256)")

    def declare_embodiment(self) -> None:
        """The arm and hand description keys of config/<robot>.yaml (``robots.arm``), declared so the
        embodiment file applies to this node as it is."""
        from ..robots.arm import embodiment_parameter_defaults

        for name, value in embodiment_parameter_defaults().items():
            self.declare(name, value, "embodiment description (config/<robot>.yaml, see robots.arm)")

    def embodiment_from_params(self):
        """The ``ArmModel`` the node's ``robot``, ``planning_group`` and embodiment parameters describe
        (the embodiment file with any overrides); bad values raise with the parameter named."""
        from ..robots.arm import arm_from_parameters, embodiment_parameter_defaults

        tree = {"robot": self.param("robot"), "planning_group": self.param("planning_group")}
        for name in embodiment_parameter_defaults():
            *parents, leaf = name.split(".")
            node = tree
            for parent in parents:
                node = node.setdefault(parent, {})
            node[leaf] = self.param(name)
        return arm_from_parameters(tree, f"{self.get_name()} parameters")

    def workspace_from_params(self):
        from ..scene import Workspace

        return Workspace(size_m=self.param("workspace_size_m"), table_height_m=self.param("table_height_m"),
                         frame_id=self.param("workspace_frame"))

    # -- state --------------------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self._active.is_set()

    def report(self, message: str, level: str = "error", error: BaseException | None = None,
               site: str | None = None) -> str:
        """Log a problem and remember it in ``last_error``; the node carries on.

        Each call ``site`` (the caller's file and line unless given) logs once per ``REPORT_PERIOD_S`` at
        most, so a bad stream cannot flood the log while a problem elsewhere still shows; the next line
        of a site counts what it held back. ``error``'s traceback goes to the debug log, or to the error
        log when it is not one of ``EXPECTED_ERRORS`` (a bug). ``last_error`` always holds the newest problem.
        The message is ``sanitise``d (no host paths, no environment values): it is also what callers answer.
        """
        message = sanitise(message)
        self.last_error = message
        if site is None:
            caller = sys._getframe(1)
            site = f"{caller.f_code.co_filename}:{caller.f_lineno}"
        now = time.monotonic()
        with self._report_lock:
            last, held_back = self._reported.get(site, (-math.inf, 0))
            if now - last < REPORT_PERIOD_S:
                self._reported[site] = (last, held_back + 1)
                return message
            self._reported[site] = (now, 0)
        # rclpy refuses a log call site whose severity changes, hence one call per severity.
        logger = self.get_logger()
        line = message + (f" ({held_back} more from here since the last line)" if held_back else "")
        if level == "error":
            logger.error(line)
        else:
            logger.warning(line)
        if error is not None:
            trace = "".join(traceback.format_exception(error)).rstrip()
            if isinstance(error, EXPECTED_ERRORS):
                logger.debug(trace)
            else:
                logger.error(trace)
        return message

    # -- transitions: subclasses implement configure / cleanup / activate_work / deactivate_work ----
    def configure(self) -> None:
        """Create library objects and ROS entities; raise with a clear message on failure."""

    def cleanup(self) -> None:
        """Release the library objects ``configure`` created (ROS entities are destroyed for you)."""

    def activate_work(self) -> None:
        """Start timers and the like."""

    def deactivate_work(self) -> None:
        """Stop them."""

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.configure()
        except Exception as error:  # a configure that fails leaves the node unconfigured, not dead
            self.report(f"configure failed: {describe_error(error)}", error=error)
            self._safe_cleanup()
            return TransitionCallbackReturn.FAILURE
        self.last_error = ""
        self.get_logger().info("configured")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.activate_work()
        except Exception as error:  # stays inactive, not dead
            self.report(f"activate failed: {describe_error(error)}", error=error)
            return TransitionCallbackReturn.FAILURE
        self._active.set()
        self.get_logger().info("active")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active.clear()
        self.deactivate_work()
        self.get_logger().info("inactive")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._safe_cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active.clear()
        self.deactivate_work()
        self._safe_cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active.clear()
        self._safe_cleanup()
        return TransitionCallbackReturn.SUCCESS

    @contextlib.contextmanager
    def running_callback(self):
        """Marks a callback under way, so cleanup does not destroy what it uses under it."""
        with self._callbacks_done:
            self._running += 1
        try:
            yield
        finally:
            with self._callbacks_done:
                self._running -= 1
                self._callbacks_done.notify_all()

    def _safe_cleanup(self) -> None:
        # A service destroyed under its running callback makes rclpy raise when the answer is sent.
        with self._callbacks_done:
            drained = self._callbacks_done.wait_for(lambda: self._running == 0, CALLBACK_DRAIN_S)
        if not drained:
            self.report(f"cleanup: {self._running} callback(s) still running after {CALLBACK_DRAIN_S:.0f} s; "
                        "their entities are destroyed under them")
        try:
            self.cleanup()
        except Exception as error:  # the entities are destroyed all the same
            self.report(f"cleanup failed: {describe_error(error)}", error=error)
        self.destroy_entities()

    # -- entities created in configure and destroyed in cleanup ------------------------------------
    def publisher(self, msg_type, topic: str, depth: int = 1):
        """A lifecycle publisher: it publishes only while the node is active."""
        entity = self.create_lifecycle_publisher(msg_type, topic, depth)
        self._entities.append((self.destroy_lifecycle_publisher, entity))
        return entity

    def subscription(self, msg_type, topic: str, callback, depth: int = 2):
        entity = self.create_subscription(msg_type, topic, callback, depth, callback_group=self.callback_group)
        self._entities.append((self.destroy_subscription, entity))
        return entity

    def service(self, srv_type, name: str, callback):
        entity = self.create_service(srv_type, name, callback, callback_group=self.callback_group)
        self._entities.append((self.destroy_service, entity))
        return entity

    def client(self, srv_type, name: str):
        entity = self.create_client(srv_type, name, callback_group=self.callback_group)
        self._entities.append((self.destroy_client, entity))
        return entity

    def static_transforms(self):
        """This node's calibrated transforms on ``/tf_static`` (``transforms.StaticTransforms``); they leave
        the graph with the publisher at cleanup."""
        from .transforms import StaticTransforms

        entity = StaticTransforms(self)
        self._entities.append((lambda transforms: transforms.destroy(), entity))
        return entity

    def destroy_entities(self) -> None:
        while self._entities:
            destroy, entity = self._entities.pop()
            destroy(entity)


# Service callbacks that wait on other services hold a thread each: keep spare threads beyond the cores.
EXECUTOR_THREADS = 8


def guarded(method):
    """Run a subscription/timer callback so that bad data is reported and never kills the node."""

    @functools.wraps(method)
    def wrapper(self: DiffgraspNode, *args, **kwargs):
        if not self.active:
            return None
        try:
            with self.running_callback():
                return method(self, *args, **kwargs)
        except Exception as error:  # bad data is reported; the node lives on
            self.report(f"{method.__name__}: {describe_error(error)}", error=error, site=method.__qualname__)
            return None

    return wrapper


def grasp_planning_service(method):
    """A GraspPlanning callback: answers FAILURE while the node is inactive or when planning raises, with
    the reason in ``error_code.message``.

    The wrapped method fills ``response`` and sets ``response.error_code`` (value and message) itself
    otherwise. Every answer's message is ``sanitise``d, the successful ones too.
    """
    from moveit_msgs.msg import MoveItErrorCodes

    @functools.wraps(method)
    def wrapper(self: DiffgraspNode, request, response):
        response.error_code.val = MoveItErrorCodes.FAILURE
        if not self.active:
            response.error_code.message = self.report(f"{self.get_name()} is not active: activate it first")
            return response
        try:
            with self.running_callback():
                answer = method(self, request, response)
            answer.error_code.message = sanitise(answer.error_code.message)
            return answer
        except Exception as error:  # the caller gets an answer with the reason, always
            response.error_code.message = self.report(f"{method.__name__.lstrip('_')}: {describe_error(error)}",
                                                      error=error, site=method.__qualname__)
            response.grasps = []
            response.error_code.val = MoveItErrorCodes.FAILURE
            return response

    return wrapper


def trigger_service(method):
    """A std_srvs/Trigger callback that always answers: a raised error becomes ``success: false`` with the
    reason in ``message``. Every answer's message is ``sanitise``d."""

    @functools.wraps(method)
    def wrapper(self: DiffgraspNode, request, response):
        try:
            with self.running_callback():
                answer = method(self, request, response)
            answer.message = sanitise(answer.message)
            return answer
        except Exception as error:  # the caller gets an answer with the reason, always
            response.success = False
            response.message = self.report(f"{method.__name__.lstrip('_')}: {describe_error(error)}", error=error,
                                           site=method.__qualname__)
            return response

    return wrapper


# Set when the process is stopping (``spin_until_stopped``): a callback waiting on another node, which may be
# stopping too, gives up at once rather than holding the executor's shutdown past what a supervisor waits.
STOPPING = threading.Event()


def wait_for_future(future, timeout_s: float) -> bool:
    """Wait from inside a callback for a service call's ``future`` (other executor threads deliver the
    answer); cancel it and return False after ``timeout_s`` or when the process starts stopping. Polling
    rather than add_done_callback: rclpy runs done-callbacks as executor tasks, which can starve while
    every executor thread is busy in a callback like the caller."""
    deadline = time.monotonic() + timeout_s
    while not future.done():
        if time.monotonic() > deadline or STOPPING.is_set():
            future.cancel()
            return False
        time.sleep(0.01)
    return True


def init_rclpy(args=None) -> None:
    """``rclpy.init`` without rclpy's own signal handlers: ``spin_until_stopped`` handles SIGINT and SIGTERM
    itself, so the context stays valid until the nodes are torn down (rclpy's handlers invalidate it at
    once, and callbacks still running then fail on publish and print tracebacks)."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)


@contextlib.contextmanager
def stop_on_signals():
    """An Event that SIGINT or SIGTERM (the signal systemd and ``docker stop`` send) sets while inside;
    the previous handlers are restored on leaving. Main thread only: signal handlers can be installed
    nowhere else."""
    import signal

    stop = threading.Event()
    previous = {number: signal.signal(number, lambda *_: stop.set()) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def spin_surviving(executor, stop: threading.Event) -> None:
    """``executor.spin`` until ``stop`` is set or the executor shuts down, surviving what finishing a
    callback can raise: rclpy raises ``InvalidHandle`` when it sends a service's answer after cleanup
    destroyed the service, and a spin thread that dies leaves a process that answers nothing."""
    from rclpy.executors import ExternalShutdownException, ShutdownException
    from rclpy.logging import get_logger

    while not stop.is_set() and executor.context.ok():
        try:
            executor.spin_once(timeout_sec=0.2)
        except (ShutdownException, ExternalShutdownException):
            return
        except Exception as error:  # the callback's node has reported what it could; keep serving the rest
            get_logger("diffgrasp").error(sanitise(f"a callback failed as it finished: {describe_error(error)}\n"
                                                   + "".join(traceback.format_exception(error)).rstrip()))


def spin_until_stopped(executor, nodes, duration_s: float | None = None, shutdown_timeout_s: float = 3.0) -> None:
    """Spin ``executor`` in a thread until SIGINT or SIGTERM (the signal systemd and ``docker stop``
    send) arrives, or ``duration_s`` passes; then, from this thread and in this order, stop the executor
    (waiting at most ``shutdown_timeout_s`` for running callbacks), destroy ``nodes`` and shut rclpy
    down. Call it from the main thread: signal handlers can only be installed there."""
    import rclpy

    STOPPING.clear()
    with stop_on_signals() as stop:
        spinner = threading.Thread(target=spin_surviving, args=(executor, stop), daemon=True)
        spinner.start()
        try:
            stop.wait(duration_s)
        finally:
            STOPPING.set()
            executor.shutdown(timeout_sec=shutdown_timeout_s)
            spinner.join(timeout=shutdown_timeout_s)
            for node in nodes:
                node.destroy_node()
            rclpy.try_shutdown()
            STOPPING.clear()  # for a process that goes on (an in-process `diffgrasp up` in tests)


def start_worker_threads(executor) -> None:
    """Start all of a MultiThreadedExecutor's worker threads now: its pool starts one only when every
    other is busy, so a process's thread count would creep up over hours and hide a real leak."""
    pool = getattr(executor, "_executor", None)  # rclpy's ThreadPoolExecutor (rclpy 9)
    if pool is None:
        return
    barrier = threading.Barrier(pool._max_workers + 1)
    for _ in range(pool._max_workers):  # each waits for all the others: no idle thread, so a new one each time
        pool.submit(barrier.wait, 10.0)
    barrier.wait(10.0)


def run(node_class, args=None) -> None:
    """Entry point of one node executable: spin on a multi-threaded executor until SIGINT or SIGTERM, then
    exit at once. With the node destroyed and rclpy shut down, nothing is left to save, and the
    interpreter's own finalization stalled in C code (no Python frame) for 5 s and more when the graph's
    processes stopped together (``diffgrasp up --processes``), past what a supervisor waits."""
    import os
    import sys

    from rclpy.executors import MultiThreadedExecutor

    init_rclpy(args)
    node = node_class()
    executor = MultiThreadedExecutor(num_threads=EXECUTOR_THREADS)
    start_worker_threads(executor)
    executor.add_node(node)
    spin_until_stopped(executor, [node])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
