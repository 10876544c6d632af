"""A workspace writer over gymnasium's vector environments.

`VectorGymAgent` writes exactly the variables bbrl's `ParallelGymAgent` writes over
an `Autoreset`-wrapped env (`env/env_obs`, `env/reward`, `env/terminated`,
`env/truncated`, `env/done`, `env/cumulated_reward`, `env/timestep`), with the same
time layout, but steps all environments with one `VectorEnv.step` call instead of
a Python loop over environments.

Time layout (BBRL's convention: `env/done[t]` means observation t is the *last*
one of its episode):

- t = 0: every env is reset; reward 0, all flags False.
- t > 0: the agent reads `action` at t-1 and steps. When an episode ends at t,
  `env/env_obs[t]` is its final observation; with auto-reset, observation t+1
  is the first of the next episode, with reward 0 and all flags False
  (gymnasium's "next step" auto-reset: the action at t is ignored).
- Full-episode mode (``autoreset=False``): a finished env repeats its final frame
  with ``done=True`` and reward 0, so ``TemporalAgent(..., stop_variable="env/done")``
  stops once every env is done. A finished env is not stepped (nor reset) again
  until the next ``t=0`` (`bbrl_ppo.agents.full_episodes`): the env steps made are
  the transitions counted, and the next batch of episodes starts from states that
  do not depend on how long the other envs' episodes lasted.

``vectorization="vector"`` steps the env's own vector implementation (gymnasium's
``vector_entry_point``, e.g. `CartPoleVectorEnv`) instead of one Python env per
index: the same layout, with the seeding and hold that `VectorGymAgent` describes
(a vector implementation does step its finished envs; the agent hides those steps).

Spaces are checked when the agent is created (`bbrl_ppo.agents.spaces`);
observations are written as the env gives them (policies encode them), and a
non-finite float observation stops the run with a `NumericalError` naming the env.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from bbrl.agents import Agent
from gymnasium.envs.registration import EnvSpec, load_env_creator
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

from bbrl_ppo.agents.episode_tracker import ENV_VARIABLES, EpisodeTracker
from bbrl_ppo.agents.full_episodes import HeldEpisodes, HoldAfterEpisodeEnd, episode_end_flags
from bbrl_ppo.agents.spaces import (
    INTEGER_SPACES,
    action_size,
    check_action_space,
    check_observation_space,
    observation_size,
)
from bbrl_ppo.agents.workspace_io import StepWriter, read_step
from bbrl_ppo.errors import EnvStepError, InvalidInputError, NumericalError, failing_env_index
from bbrl_ppo.persistence.env_state import capture_vector_env, restore_vector_env

#: Offset between the seeds of training and evaluation envs, so that evaluation
#: episodes never replay the training episodes' initial states.
EVAL_SEED_OFFSET = 1_000_003

EnvWrapper = Callable[[gym.Env], gym.Env]

#: How the envs are stepped: gymnasium's `SyncVectorEnv` (a loop over envs in this
#: process), `AsyncVectorEnv` (one subprocess per env), or the env's own vector
#: implementation, registered as its ``vector_entry_point`` (arrays over all envs).
VECTORIZATIONS = ("sync", "async", "vector")
#: Keyword arguments `gymnasium.make` takes itself, whatever the env.
_MAKE_ARGUMENTS = ("max_episode_steps", "disable_env_checker")
#: Arguments of a vector entry point that `gymnasium.make_vec` gives itself.
_MAKE_VEC_ARGUMENTS = ("num_envs",)
#: Exclusive upper bound of the seeds an env agent draws for its resets.
_SEED_BOUND = 2**63


def make_env(
    env_name: str,
    *,
    env_args: dict[str, Any] | None = None,
    wrappers: Sequence[EnvWrapper] = (),
    render_mode: str | None = None,
) -> gym.Env:
    """Create one env with `gymnasium.make`, then apply `wrappers` in order.

    Time limits come from the env's registration (gymnasium adds `TimeLimit`), so
    truncations are reported exactly as gymnasium reports them. `env_name` may be
    any id `gymnasium.make` accepts, including ``"my_module:MyEnv-v0"``. An
    `env_args` key the env's constructor does not take is refused with the list of
    those it takes.
    """
    kwargs = dict(env_args or {})
    _check_env_args(env_name, kwargs)
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    try:
        env = gym.make(env_name, **kwargs)
    except gym.error.UnregisteredEnv as error:
        raise InvalidInputError(_unknown_env_message(env_name)) from error
    for wrapper in wrappers:
        env = wrapper(env)
    return env


def _unknown_env_message(env_name: str) -> str:
    close = difflib.get_close_matches(env_name, list(gym.registry.keys()), n=5, cutoff=0.5)
    hint = f" Did you mean one of: {', '.join(close)}?" if close else ""
    return (
        f"Unknown environment id {env_name!r}: gymnasium has no such registered env.{hint} "
        "A custom env can be given as 'my_module:MyEnv-v0' (the module is imported first)."
    )


def make_vector_implementation(
    env_name: str,
    num_envs: int,
    *,
    env_args: dict[str, Any] | None = None,
    wrappers: Sequence[EnvWrapper] = (),
    render_mode: str | None = None,
) -> VectorEnv:
    """Create `num_envs` envs as the env's own vector implementation (`gymnasium.make_vec`).

    Only envs registered with a ``vector_entry_point`` have one (CartPole's
    `CartPoleVectorEnv` steps all its envs in a few numpy operations). `env_args`
    go to that implementation's constructor, which takes the time limit
    (``max_episode_steps``) itself. Per-env wrappers cannot be applied to it, and
    the env agent's layout needs gymnasium's next-step auto-reset: both are refused.
    """
    if wrappers:
        names = [getattr(wrapper, "__qualname__", repr(wrapper)) for wrapper in wrappers]
        raise InvalidInputError(
            f"vectorization='vector' steps all {env_name} envs in one array operation, so the "
            f"env wrappers {names} cannot be applied to each env: use vectorization='sync' "
            "with wrappers"
        )
    spec = _registered_spec(env_name)
    if spec is None:
        raise InvalidInputError(_unknown_env_message(env_name))
    if spec.vector_entry_point is None:
        raise InvalidInputError(
            f"{env_name} has no vector implementation (no vector_entry_point in its "
            f"registration), so vectorization='vector' cannot step it; the registered envs "
            f"that have one: {', '.join(vector_entry_point_ids())}. Use 'sync' or 'async'."
        )
    kwargs = dict(env_args or {})
    _check_env_args(env_name, kwargs, vector=True)
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    envs = gym.make_vec(spec.id, num_envs, vectorization_mode="vector_entry_point", **kwargs)
    mode = envs.metadata.get("autoreset_mode")
    if mode is None or AutoresetMode(mode) is not AutoresetMode.NEXT_STEP:
        envs.close()
        raise InvalidInputError(
            f"The vector implementation of {env_name} ({type(envs).__name__}) auto-resets in "
            f"mode {mode}; the env agent needs {AutoresetMode.NEXT_STEP} (an ended episode's "
            "final observation, then a reset step): use vectorization='sync'"
        )
    return envs


def vector_entry_point_ids() -> list[str]:
    """The ids registered in gymnasium that have a vector implementation."""
    return [env_id for env_id, spec in gym.registry.items() if spec.vector_entry_point]


def _check_env_args(env_name: str, env_args: dict[str, Any], *, vector: bool = False) -> None:
    """Refuse an argument the env's constructor does not take, naming those it takes.

    gymnasium would raise a TypeError from deep inside `gymnasium.make`. An env
    whose constructor takes ``**kwargs``, or one that cannot be looked up here (an
    unknown id: `gymnasium.make` says so), is left to gymnasium. With `vector`,
    the constructor is the env's vector implementation.
    """
    if not env_args:
        return
    creator = _env_creator(env_name, vector=vector)
    if creator is None:
        return
    try:
        parameters = inspect.signature(creator).parameters.values()
    except (TypeError, ValueError):  # a builtin or C extension: nothing to inspect
        return
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    accepted = [parameter.name for parameter in parameters if parameter.kind in named]
    given_by_gymnasium = ("self", *_MAKE_VEC_ARGUMENTS) if vector else ("self",)
    accepted = [name for name in accepted if name not in given_by_gymnasium]
    if not vector:
        accepted += list(_MAKE_ARGUMENTS)
    unknown = [key for key in env_args if key not in accepted]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), accepted, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        which = f"the vector implementation of {env_name}" if vector else env_name
        raise InvalidInputError(
            f"Unknown env argument{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))} for {which} (gym_env.env_args){hint}: "
            f"it accepts {', '.join(accepted)}"
        )


def _registered_spec(env_name: str) -> EnvSpec | None:
    """The registration of `env_name` (its module imported first), or None if not found."""
    module, _, env_id = env_name.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError:
            return None  # gymnasium.make reports it
    return gym.registry.get(env_id)


def _env_creator(env_name: str, *, vector: bool = False) -> Callable[..., Any] | None:
    """The callable `gymnasium.make` (`make_vec` with `vector`) would call, or None."""
    spec = _registered_spec(env_name)
    if spec is None:
        return None
    entry_point = spec.vector_entry_point if vector else spec.entry_point
    if entry_point is None:
        return None
    if callable(entry_point):
        return entry_point
    try:
        return load_env_creator(entry_point)
    except (ImportError, AttributeError, ValueError):
        return None


class VectorGymAgent(Agent):
    """Steps `num_envs` copies of a gymnasium env and writes `env/*` variables.

    Args:
        env_name: a gymnasium id (``"CartPole-v1"``, ``"my_module:MyEnv-v0"``).
        num_envs: number of environments stepped side by side.
        env_args: keyword arguments for `gymnasium.make` (``cfg.gym_env.env_args``).
        wrappers: callables ``env -> env`` applied to each env, in order.
        autoreset: True for continuing rollouts (training), False for full
            episodes (evaluation).
        vectorization: ``"sync"`` (one process, the fastest for cheap envs),
            ``"async"`` (one subprocess per env, for envs whose step is costly) or
            ``"vector"`` (the env's own vector implementation, for the ids that have
            one, see `make_vector_implementation`: no per-env Python at all).
        seed: env i is first reset with ``seed + i``; a sequence gives each env's
            seed. Later resets follow each env's own RNG, so the same seed gives the
            same workspace run after run. With ``"vector"``, see below.
        render_mode: forwarded to `gymnasium.make` (``"rgb_array"`` for videos).
        device: where the variables are written, the policy's device. The envs step
            on the CPU: each step's variables are moved there once, and the actions
            read back from it.
        input_string: the action variable read at t-1.
        output_string: the prefix of the variables written.

    With ``vectorization="vector"`` all envs share the implementation's one
    generator, reset with the first seed (`seed`; a sequence's first): env i's
    episodes are then not those of ``"sync"``'s ``seed + i`` (the same task,
    statistically, not the same start states), and the same seed still gives the
    same workspace run after run. A distributed run seeds each rank's envs with
    ``seed`` + the index of its first env in the run, so its envs are not those of
    a single process either. In full-episode mode the implementation keeps stepping
    the envs whose episode ended, with hidden auto-resets that draw from that
    generator: the agent hides them (`HeldEpisodes`) and reseeds the generator at
    every ``t=0`` with a seed drawn from a stream of its own (made from `seed`, or
    from fresh entropy when there is none), so that an evaluation's start states do
    not depend on how the policy played the previous one.
    """

    def __init__(
        self,
        env_name: str,
        num_envs: int = 1,
        *,
        env_args: dict[str, Any] | None = None,
        wrappers: Sequence[EnvWrapper] = (),
        autoreset: bool = True,
        vectorization: str = "sync",
        seed: int | Sequence[int] | None = None,
        render_mode: str | None = None,
        device: torch.device | str = "cpu",
        input_string: str = "action",
        output_string: str = "env/",
        name: str = "env",
    ):
        super().__init__(name=name)
        if not isinstance(num_envs, int) or num_envs < 1:
            raise InvalidInputError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        if vectorization not in VECTORIZATIONS:
            raise InvalidInputError(
                f"vectorization must be one of {VECTORIZATIONS}, got {vectorization!r}"
            )
        self.env_name = env_name
        self.num_envs = num_envs
        self.autoreset = autoreset
        self.vectorization = vectorization
        self.input = input_string
        self.output = output_string
        self._seeds = _expand_seeds(seed, num_envs)
        device = torch.device(device)
        #: None on the CPU, where the tracker's tensors are written as they are.
        self._device = None if device.type == "cpu" else device

        if vectorization == "vector":
            self.envs: VectorEnv = self._vector_implementation(
                env_name, env_args, wrappers, render_mode
            )
        else:
            self.envs = self._gymnasium_vector_env(env_name, env_args, wrappers, render_mode)
        hold_here = vectorization == "vector" and not autoreset
        #: Full-episode mode over a vector implementation: the hold, and the stream
        #: of seeds of its resets (None otherwise).
        self._hold = HeldEpisodes(num_envs) if hold_here else None
        self._reset_seeds = _seed_stream(self._seeds) if hold_here else None

        # bbrl's layout: float observations as float32, others as int64.
        floating = np.issubdtype(self.observation_space.dtype, np.floating)
        obs_dtype = np.dtype(np.float32 if floating else np.int64)
        # Only float observations can be NaN; one isfinite per vector step.
        self._check_observations = bool(floating)
        self._tracker = EpisodeTracker(num_envs, autoreset=autoreset, obs_dtype=obs_dtype)
        self._writer = StepWriter([output_string + key for key in ENV_VARIABLES])
        self._clip_actions = isinstance(self.action_space, gym.spaces.Box)
        self._integer_actions = isinstance(self.action_space, INTEGER_SPACES)
        # Policies write a flat vector per env (an index for Discrete); the env may
        # want another shape.
        shape = self.action_space.shape
        flat = len(shape) == 1 or isinstance(self.action_space, gym.spaces.Discrete)
        self._action_shape = None if flat else shape
        # Policies count from 0; Discrete(n, start=s) and MultiDiscrete count from `start`.
        start = getattr(self.action_space, "start", None)
        self._action_start = start if start is not None and np.any(start != 0) else None

    def _vector_implementation(
        self,
        env_name: str,
        env_args: dict[str, Any] | None,
        wrappers: Sequence[EnvWrapper],
        render_mode: str | None,
    ) -> VectorEnv:
        """The env's own vector implementation (`make_vector_implementation`); sets the spaces."""
        envs = make_vector_implementation(
            env_name, self.num_envs, env_args=env_args, wrappers=wrappers, render_mode=render_mode
        )
        self._set_spaces(envs.single_observation_space, envs.single_action_space, env_name)
        return envs

    def _set_spaces(
        self, observation_space: gym.Space, action_space: gym.Space, env_name: str
    ) -> None:
        """Keep each env's spaces, refused here if the policies cannot handle them."""
        self.observation_space = observation_space
        self.action_space = action_space
        check_observation_space(observation_space, env_name)
        check_action_space(action_space, env_name)

    def _gymnasium_vector_env(
        self,
        env_name: str,
        env_args: dict[str, Any] | None,
        wrappers: Sequence[EnvWrapper],
        render_mode: str | None,
    ) -> VectorEnv:
        """A `SyncVectorEnv` or `AsyncVectorEnv` over envs made by `make_env`; sets the spaces."""
        # Fails early, with our message, on an unknown id, a bad argument or a bad space:
        # before any env is stepped.
        probe = make_env(env_name, env_args=env_args, wrappers=wrappers)
        self._set_spaces(probe.observation_space, probe.action_space, env_name)
        probe.close()

        if not self.autoreset:
            wrappers = (*wrappers, HoldAfterEpisodeEnd)
        env_fn = partial(
            make_env, env_name, env_args=env_args, wrappers=tuple(wrappers), render_mode=render_mode
        )
        vector_class = SyncVectorEnv if self.vectorization == "sync" else AsyncVectorEnv
        # copy=False: the tracker copies observations into tensors it owns, so the
        # vector env's own defensive deepcopy would be a second copy. Full-episode
        # mode: the envs hide their episode ends, and the vector env never resets.
        mode = AutoresetMode.NEXT_STEP if self.autoreset else AutoresetMode.DISABLED
        return vector_class([env_fn] * self.num_envs, copy=False, autoreset_mode=mode)

    # -- the bbrl GymAgent interface --------------------------------------------------
    def seed(self, seed: int | Sequence[int]) -> VectorGymAgent:
        """Set the seeds used by the next reset (then they are forgotten).

        In full-episode mode over a vector implementation, the stream of reset
        seeds restarts from the first seed at that reset.
        """
        self._seeds = _expand_seeds(seed, self.num_envs)
        return self

    def get_observation_space(self) -> gym.Space:
        """The observation space of each env (bbrl's GymAgent interface)."""
        return self.observation_space

    def get_action_space(self) -> gym.Space:
        """The action space of each env (bbrl's GymAgent interface)."""
        return self.action_space

    def get_obs_and_actions_sizes(self) -> tuple[int, int | list[int]]:
        """The sizes of a policy's input and output, as bbrl's notebooks use them.

        Observation: the number of features the policy's MLP reads (``n`` for a
        Discrete space, one-hot; the product of the shape for a Box, flattened;
        bbrl gives a shape tuple there, which no MLP takes). Action: ``n`` for
        Discrete, the flattened length for Box and MultiBinary, and one size per
        dimension (a list) for MultiDiscrete.
        """
        return observation_size(self.observation_space), action_size(self.action_space)

    def is_continuous_action(self) -> bool:
        """True for a `Box` action space: a Gaussian policy acts in it."""
        return isinstance(self.action_space, gym.spaces.Box)

    def is_discrete_action(self) -> bool:
        """True for a `Discrete` action space only (MultiDiscrete has its own policy)."""
        return isinstance(self.action_space, gym.spaces.Discrete)

    def is_continuous_state(self) -> bool:
        """True for a `Box` observation space (flattened for the policy)."""
        return isinstance(self.observation_space, gym.spaces.Box)

    def is_discrete_state(self) -> bool:
        """True for a `Discrete` observation space (one-hot for the policy)."""
        return isinstance(self.observation_space, gym.spaces.Discrete)

    # -- stepping ----------------------------------------------------------------------
    def forward(self, t: int, **kwargs) -> None:
        """Reset every env at ``t == 0``, else step them with ``action[t-1]``; write ``env/*``."""
        if t == 0:
            try:
                observations, _ = self.envs.reset(seed=self._next_reset_seeds())
            except Exception as error:
                raise self._env_failure(error, "reset", None) from error
            if self._hold is not None:
                self._hold.reset()
            if self._check_observations:
                self._require_finite(observations, None)
            frame = self._tracker.reset(observations)
        else:
            actions = self._read_actions(t - 1)
            try:
                observations, rewards, terminated, truncated, infos = self.envs.step(actions)
            except Exception as error:
                raise self._env_failure(error, "step", actions) from error
            if self._hold is not None:
                observations, rewards, terminated, truncated = self._hold.step(
                    observations, rewards, terminated, truncated
                )
            elif not self.autoreset:
                terminated, truncated = episode_end_flags(infos, self.num_envs)
            if self._check_observations:
                self._require_finite(observations, actions)
            frame = self._tracker.step(observations, rewards, terminated, truncated)
        if self._device is not None:
            frame = [value.to(self._device) for value in frame]
        self._writer.write(self.workspace, t, frame)

    def _next_reset_seeds(self) -> int | list[int] | None:
        """The seed(s) of a reset at ``t=0``: the pending ones, then forgotten.

        A vector implementation has one generator, reset with one seed. In
        full-episode mode it is reseeded at every reset, from the agent's stream.
        """
        seeds, self._seeds = self._seeds, None
        if self.vectorization != "vector":
            return seeds
        if self._reset_seeds is None:
            return None if seeds is None else seeds[0]
        if seeds is not None:
            self._reset_seeds = _seed_stream(seeds)
        return int(self._reset_seeds.integers(_SEED_BOUND))

    def _require_finite(self, observations: np.ndarray, actions: np.ndarray | None) -> None:
        """Raise `NumericalError` naming the first env that returned a NaN or inf observation.

        Caught here, the cause is named; a policy would fail later inside torch's
        distributions, or training would report a non-finite reward or loss.
        """
        if np.isfinite(observations).all():
            return
        rows = observations.reshape(self.num_envs, -1)
        bad = ~np.isfinite(rows)
        index = int(np.flatnonzero(bad.any(axis=1))[0])
        row = rows[index]
        shown = row.tolist() if row.size <= 8 else f"({bad[index].sum()} of {row.size} values)"
        tracker = self._tracker
        if actions is None:
            where = "at its reset"
        elif self.autoreset and tracker.done[index]:
            where = "at its auto-reset"
        else:
            step = int(tracker.timestep[index]) + 1
            where = f"at step {step} of its episode, after action {actions[index].tolist()}"
        raise NumericalError(
            f"Non-finite observation {shown} from {self.env_name} env "
            f"{index} of {self.num_envs} {where}"
        )

    def _env_failure(
        self, error: Exception, stage: str, actions: np.ndarray | None
    ) -> EnvStepError:
        """An error naming the env and its step; subprocess workers are stopped first."""
        index = failing_env_index(error)
        if index is None:
            which = f"one of the {self.num_envs} {self.env_name} envs (index unknown)"
            where = ""
        else:
            which = f"{self.env_name} env {index} of {self.num_envs}"
            if stage == "step":
                episode_step = int(self._tracker.timestep[index]) + 1
                where = f" at step {episode_step} of its episode, action {actions[index].tolist()}"
            else:
                where = ""
        if isinstance(self.envs, AsyncVectorEnv):
            # The failed worker is gone; stop the others rather than leak them.
            self.envs.close(terminate=True)
        return EnvStepError(
            f"{which} raised during {stage}{where}: {type(error).__name__}: {error}"
        )

    def _read_actions(self, t: int) -> np.ndarray:
        action = read_step(self.workspace, self.input, t)
        try:
            actions = action.numpy()
        except (RuntimeError, TypeError):  # requires grad, or not on the CPU
            actions = action.detach().cpu().numpy()
        if actions.ndim == 0 or actions.shape[0] != self.num_envs:
            raise InvalidInputError(
                f"The action batch at t={t} has shape {tuple(actions.shape)}, but "
                f"{self.num_envs} environments need one action each (first dimension "
                f"{self.num_envs})."
            )
        if self._clip_actions:
            # The workspace keeps the sampled action (PPO needs its log-prob);
            # only the env sees it clipped to its bounds.
            actions = np.clip(actions, self.action_space.low, self.action_space.high)
        elif self._integer_actions:
            actions = self._integer_env_actions(actions, t)
        if self._action_shape is not None:
            actions = actions.reshape(self.num_envs, *self._action_shape)
        if self._action_start is not None:
            actions = actions + self._action_start
        return actions

    def _integer_env_actions(self, actions: np.ndarray, t: int) -> np.ndarray:
        """Integer actions in the space's dtype; float ones are refused, never rounded.

        A float action for a discrete space means a policy for another space (a
        Gaussian on a MultiDiscrete env would otherwise train on actions the env
        does not have).
        """
        if actions.dtype.kind not in "iub":
            raise InvalidInputError(
                f"The action written at t={t} holds {actions.dtype} values (first: "
                f"{actions[0].tolist()}), but the {self.action_space} action space of "
                f"{self.env_name} takes integers: use a policy for that space "
                "(DiscretePolicy, MultiDiscretePolicy or MultiBinaryPolicy)"
            )
        return actions.astype(self.action_space.dtype, copy=False)

    # -- checkpoints -----------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue stepping exactly here, as plain data.

        ``state["envs"]["exact"]`` is False when some env state could not be
        captured (see `bbrl_ppo.persistence.env_state`).
        """
        state = {
            "envs": capture_vector_env(self.envs),
            "tracker": self._tracker.get_state(),
            "seeds": self._seeds,
        }
        if self._hold is not None:
            state["hold"] = self._hold.get_state()
            state["reset_seeds"] = self._reset_seeds.bit_generator.state
        return state

    def set_state(self, state: dict[str, Any]) -> bool:
        """Restore `get_state`'s result; returns whether the envs are exactly restored.

        When they are not, the next ``forward(t=0)`` must reset them.
        """
        restore_vector_env(self.envs, state["envs"])
        self._tracker.set_state(state["tracker"])
        self._seeds = state["seeds"]
        if self._hold is not None:
            self._hold.set_state(state["hold"])
            self._reset_seeds.bit_generator.state = state["reset_seeds"]
        return bool(state["envs"]["exact"])

    # -- rendering and cleanup --------------------------------------------------------
    def render(self) -> list[np.ndarray]:
        """One frame per env (envs must be created with ``render_mode="rgb_array"``)."""
        return list(self.envs.render())

    def close(self) -> None:
        """Close the vector env (and its subprocesses for ``vectorization='async'``)."""
        self.envs.close()


def _seed_stream(seeds: list[int] | None) -> np.random.Generator:
    """The generator of an agent's reset seeds: from its first seed, or fresh entropy.

    Drawn once, at creation, the entropy makes the stream independent of whatever
    the envs and policies do later.
    """
    return np.random.default_rng(None if seeds is None else seeds[0])


def _expand_seeds(seed: int | Sequence[int] | None, num_envs: int) -> list[int] | None:
    if seed is None:
        return None
    if isinstance(seed, (int, np.integer)):
        return [int(seed) + i for i in range(num_envs)]
    seeds = [int(s) for s in seed]
    if len(seeds) != num_envs:
        raise InvalidInputError(f"Got {len(seeds)} seeds for {num_envs} environments")
    return seeds
