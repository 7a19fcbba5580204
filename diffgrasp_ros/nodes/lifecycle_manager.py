"""``lifecycle_manager``: brings the graph's lifecycle nodes up in order and keeps them up, as nav2_lifecycle_manager does.

Every ``check_period_s`` it asks each node of ``node_names`` (in order) for its state:

- a node that is **unconfigured** (just started, or restarted by its process supervisor) is configured
  and activated;
- a node that is **inactive** is activated only if the manager has not brought it up before (so a node
  deactivated by hand stays inactive);
- a node whose services do not answer is **down**;
- a node whose configure or activate **failed** (a missing camera, unreadable weights) is tried again after
  ``check_period_s``, then after twice as long at every failure, up to ``max_retry_period_s``: a node that
  cannot come up is retried for as long as it runs, without loading its models every second. Its state
  says so (``configure failed, retry in 4 s``); a restarted node is tried at once.

``~/get_graph_state`` (std_srvs/Trigger) answers every node's state, ``success`` when all are active.
"""
from __future__ import annotations

import threading
import time

from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from std_srvs.srv import Trigger

from .base import STOPPING, run, wait_for_future
from .graph import GRAPH

DOWN = "down"


class LifecycleManagerNode(Node):
    def __init__(self, **kwargs):
        super().__init__("lifecycle_manager", **kwargs)
        group = ReentrantCallbackGroup()
        self.declare_parameter("node_names", [spec.name for spec in GRAPH],
                               ParameterDescriptor(description="the lifecycle nodes to manage, in bring-up order"))
        self.declare_parameter("check_period_s", 1.0, ParameterDescriptor(description="how often states are checked"))
        self.declare_parameter("transition_timeout_s", 60.0,
                               ParameterDescriptor(description="longest wait for a node's transition (configure "
                                                   "loads models)"))
        self.declare_parameter("max_retry_period_s", 15.0,
                               ParameterDescriptor(description="longest wait before a failed configure or "
                                                   "activate is tried again (the wait doubles from check_period_s)"))
        self.node_names = list(self.get_parameter("node_names").value)
        self.states = {name: DOWN for name in self.node_names}
        self._brought_up = {name: False for name in self.node_names}
        self._failures = {name: 0 for name in self.node_names}  # failed transitions in a row
        self._retry_at = {name: 0.0 for name in self.node_names}  # time.monotonic() of the next attempt
        self._lifecycle_clients = {name: (self.create_client(GetState, f"{name}/get_state", callback_group=group),
                                self.create_client(ChangeState, f"{name}/change_state", callback_group=group))
                         for name in self.node_names}
        self._checking = threading.Lock()
        self.create_service(Trigger, "~/get_graph_state", self._on_get_graph_state, callback_group=group)
        self.create_timer(self.get_parameter("check_period_s").value, self._check, callback_group=group)

    def _check(self) -> None:
        if not self._checking.acquire(blocking=False):
            return  # the previous round is still bringing a node up
        try:
            for name in self.node_names:
                if STOPPING.is_set():
                    return  # the graph is stopping with this process: its nodes going down is no failure
                self._keep_up(name)
        finally:
            self._checking.release()

    def _keep_up(self, name: str) -> None:
        get_state, change_state = self._lifecycle_clients[name]
        if not get_state.service_is_ready():
            if self.states[name] != DOWN:
                self.get_logger().warning(f"{name} is down")
            self.states[name], self._brought_up[name] = DOWN, False
            self._failures[name], self._retry_at[name] = 0, 0.0  # a node started again is tried at once
            return
        answer = self._call(get_state, GetState.Request(), 5.0)
        if answer is None:
            self.states[name] = DOWN
            return
        state = answer.current_state.id
        needs_transition = state == State.PRIMARY_STATE_UNCONFIGURED or (
            state == State.PRIMARY_STATE_INACTIVE and not self._brought_up[name])
        if needs_transition and time.monotonic() < self._retry_at[name]:
            return  # failed before: wait for the retry (the state keeps saying when)
        if state == State.PRIMARY_STATE_UNCONFIGURED:
            self._brought_up[name] = False
            if not self._transition(name, change_state, Transition.TRANSITION_CONFIGURE):
                return
            state = State.PRIMARY_STATE_INACTIVE
        if state == State.PRIMARY_STATE_INACTIVE and not self._brought_up[name]:
            if not self._transition(name, change_state, Transition.TRANSITION_ACTIVATE):
                return
            state = State.PRIMARY_STATE_ACTIVE
            self.get_logger().info(f"{name} is active")
        if state == State.PRIMARY_STATE_ACTIVE:
            self._brought_up[name] = True
            self._failures[name], self._retry_at[name] = 0, 0.0
        self.states[name] = {State.PRIMARY_STATE_UNCONFIGURED: "unconfigured", State.PRIMARY_STATE_INACTIVE: "inactive",
                             State.PRIMARY_STATE_ACTIVE: "active", State.PRIMARY_STATE_FINALIZED: "finalized"}.get(
                                 state, answer.current_state.label)

    def _transition(self, name: str, client, transition: int) -> bool:
        what = "configure" if transition == Transition.TRANSITION_CONFIGURE else "activate"
        answer = self._call(client, ChangeState.Request(transition=Transition(id=transition)),
                            self.get_parameter("transition_timeout_s").value)
        if answer is None and STOPPING.is_set():
            return False
        if answer is None or not answer.success:
            self._failures[name] += 1
            period = self.get_parameter("check_period_s").value
            wait = min(period * 2 ** (self._failures[name] - 1), max(self.get_parameter("max_retry_period_s").value,
                                                                       period))
            self._retry_at[name] = time.monotonic() + wait
            self.states[name] = f"{what} failed, retry in {wait:.0f} s"
            self.get_logger().error(f"{name}: {what} failed{' (no answer)' if answer is None else ''}, "
                                    f"{self._failures[name]} time(s) in a row (its log says why); trying again in "
                                    f"{wait:.1f} s")
            return False
        return True

    @staticmethod
    def _call(client, request, timeout_s: float):
        """The answer of a service call made from a callback, or None after ``timeout_s``."""
        future = client.call_async(request)
        return future.result() if wait_for_future(future, timeout_s) else None

    def _on_get_graph_state(self, request, response):
        states = dict(self.states)
        response.success = all(state == "active" for state in states.values())
        response.message = ", ".join(f"{name}: {state}" for name, state in states.items())
        return response


def main(args=None) -> None:
    run(LifecycleManagerNode, args)
