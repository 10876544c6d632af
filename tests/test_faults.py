"""Numerical and environment faults stop training with an error that says where."""

import dataclasses
import hashlib
import math
import multiprocessing

import pytest
import torch
from omegaconf import OmegaConf

import tests.toy_envs  # noqa: F401  (registers Faulty-v0)
from bbrl_ppo import Agent, Agents, TemporalAgent, VectorGymAgent, Workspace
from bbrl_ppo.algorithms.ppo import PPOClip
from bbrl_ppo.errors import EnvStepError, NumericalError

FAULTY = "tests.toy_envs:Faulty-v0"


def config(env_args=None, **algorithm):
    return OmegaConf.create(
        {
            "base_dir": "faults",
            "progress_bar": False,
            "gym_env": {"env_name": FAULTY, "env_args": env_args or {}},
            "algorithm": {
                "seed": 10,
                "n_envs": 2,
                "transitions_per_env": 16,
                "batch_size": 16,
                "opt_epochs": 2,
                "max_steps": 800,
                "eval_interval": 60,
                "checkpoint_interval": 60,
                "nb_evals": 2,
                **algorithm,
            },
        }
    )


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_nan_reward_stops_training_and_keeps_the_last_good_files():
    # Env 1 (seed 11) pays NaN from the 3rd step of its 4th episode (~ env step 130).
    algo = PPOClip(config({"fail_seed": 11, "fail_episode": 3, "nan_reward": True}))
    saved = {}
    original_save = algo.save_checkpoint

    def save_and_remember():
        path = original_save()
        saved["checkpoint"] = digest(path)
        saved["best"] = digest(algo.base_dir / "best_agent.pt")
        return path

    algo.save_checkpoint = save_and_remember
    with pytest.raises(NumericalError, match=r"Non-finite env reward .* in the rollout of update"):
        algo.run()
    assert saved, "a checkpoint was written before the fault"
    assert digest(algo.checkpoint_path) == saved["checkpoint"]
    assert digest(algo.base_dir / "best_agent.pt") == saved["best"]
    best = torch.load(algo.base_dir / "best_agent.pt", weights_only=True)["state_dict"]
    assert all(torch.isfinite(value).all() for value in best.values())


class PoisonedPPO(PPOClip):
    """Injects a non-finite value in one quantity from update `at_update` on."""

    poison: str = "policy loss"
    at_update: int = 3

    def policy_loss(self, batch, distribution, log_probs, advantages):
        terms = super().policy_loss(batch, distribution, log_probs, advantages)
        if self.poison == "policy loss" and self.epoch + 1 >= self.at_update:
            terms = dataclasses.replace(terms, loss=terms.loss * math.nan)
        if self.poison == "gradient" and self.epoch + 1 >= self.at_update:
            terms.loss.register_hook(lambda grad: grad * math.inf)
        return terms

    def train_minibatch(self, batch):
        metrics = super().train_minibatch(batch)
        if self.poison == "parameter" and self.epoch + 1 >= self.at_update:
            with torch.no_grad():
                next(self.critic_agent.parameters())[0] = math.inf
        return metrics


@pytest.mark.parametrize(
    "poison, message",
    [
        ("policy loss", r"Non-finite policy loss \(nan\) in update 3 \(optimization epoch 1, mini"),
        ("gradient", r"Non-finite policy gradient norm \((inf|nan)\) in update 3 "),
        ("parameter", r"Non-finite critic parameter '.*' after update 3 "),
    ],
)
def test_non_finite_losses_gradients_and_parameters_are_named(poison, message):
    # One minibatch per update: a poisoned parameter is only seen by the end-of-update check.
    algo = PoisonedPPO(config(eval_interval=10_000, opt_epochs=1, batch_size=32))
    algo.poison = poison
    with pytest.raises(NumericalError, match=message):
        algo.run()
    assert algo.epoch == 2, "stopped in the third update"


def test_a_nan_model_is_never_written_as_best():
    algo = PPOClip(config(max_steps=64))
    algo.run()
    path = algo.base_dir / "best_agent.pt"
    before = digest(path)
    with torch.no_grad():
        next(algo.best_policy.parameters())[0] = math.nan
    with pytest.raises(NumericalError, match="best policy parameter"):
        algo.save_best()
    with pytest.raises(NumericalError, match="evaluation return"):
        algo.register_evaluation(torch.tensor([1.0, math.nan]))
    assert digest(path) == before


class AlwaysOne(Agent):
    def forward(self, t, **kwargs):
        self.set(("action", t), torch.ones(4, dtype=torch.long))


# gymnasium logs the worker's traceback as a warning before re-raising it.
@pytest.mark.filterwarnings("ignore::UserWarning:gymnasium.*")
@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_an_env_that_raises_is_named_with_its_step(vectorization):
    env = VectorGymAgent(
        FAULTY, 4, env_args={"fail_seed": 12}, seed=10, vectorization=vectorization
    )
    with pytest.raises(EnvStepError) as raised:
        TemporalAgent(Agents(env, AlwaysOne()))(Workspace(), t=0, n_steps=10)
    message = str(raised.value)
    assert "Faulty-v0 env 2 of 4 raised during step at step 3 of its episode, action 1" in message
    assert "RuntimeError: the simulator diverged" in message
    assert multiprocessing.active_children() == [], "no worker process is left running"
    env.close()


def test_a_training_run_reports_the_failing_env():
    algo = PPOClip(config({"fail_seed": 11, "fail_episode": 2}))
    with pytest.raises(EnvStepError, match="env 1 of 2 raised during step at step 3"):
        algo.run()
