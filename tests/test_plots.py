"""bbrl-ppo plot: the curves, bands, panels and legends of the figure, and the files it writes."""

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.lines import Line2D
from scipy import stats

from bbrl_ppo.cli import main
from bbrl_ppo.errors import InvalidInputError
from bbrl_ppo.experiments.plotting import plot_runs
from bbrl_ppo.experiments.runs import RunWarning
from tests.test_report import write_experiment, write_run

#: Three seeds evaluated at different steps; on the common range [150, 300] seed 1 is
#: x - 100, seed 2 is (x - 100) / 5, seed 3 is 100.
SEEDS = {
    1: [(100, 1.0, 0.0), (200, 2.0, 100.0), (300, 3.0, 200.0)],
    2: [(150, 1.0, 10.0), (250, 2.0, 30.0), (350, 3.0, 50.0)],
    3: [(100, 2.0, 100.0), (200, 4.0, 100.0), (300, 6.0, 100.0)],
}
GRID = np.array([150.0, 200.0, 250.0, 300.0])
ON_GRID = np.stack([GRID - 100, (GRID - 100) / 5, np.full(4, 100.0)])

# Seed 2 runs on to 350 steps, past the others: said once below, silenced elsewhere.
pytestmark = pytest.mark.filterwarnings("ignore:.*the curve stops at 300 env steps")


def _curves(axes) -> list[Line2D]:
    """The plotted curves: every line but the horizontal target line."""
    return [line for line in axes.get_lines() if line.get_linestyle() != "--"]


def _legend_texts(axes) -> list[str]:
    return [text.get_text() for text in axes.get_legend().get_texts()]


def test_mean_curve_band_target_and_legend(tmp_path):
    experiment = write_experiment(tmp_path / "exp", SEEDS)
    with pytest.warns(RunWarning, match="stops at 300 env steps.*the longest goes to 350"):
        figure = plot_runs([experiment], target=150)

    [axes] = figure.axes
    assert axes.get_title() == "CartPole-v1"
    assert axes.get_xlabel() == "env steps"
    assert axes.get_ylabel() == "evaluation return (mean of 10 episodes)"
    [curve] = _curves(axes)
    np.testing.assert_allclose(curve.get_xdata(), GRID)
    np.testing.assert_allclose(curve.get_ydata(), ON_GRID.mean(axis=0))

    [band] = axes.collections
    assert isinstance(band, PolyCollection)
    expected = stats.bootstrap(
        (ON_GRID,),
        np.mean,
        axis=0,
        n_resamples=2000,
        method="percentile",
        rng=np.random.default_rng(0),
    ).confidence_interval
    vertices = band.get_paths()[0].vertices
    means = ON_GRID.mean(axis=0)
    for x, low, high, mean in zip(GRID, expected.low, expected.high, means, strict=True):
        at_x = vertices[np.isclose(vertices[:, 0], x), 1]
        assert at_x.min() == pytest.approx(low) and at_x.max() == pytest.approx(high)
        assert low <= mean <= high
    assert (expected.high - expected.low > 1).all()  # a real band, not a line

    [target] = [line for line in axes.get_lines() if line.get_linestyle() == "--"]
    assert set(target.get_ydata()) == {150}
    assert _legend_texts(axes) == ["exp: mean of 3 seeds, 95% bootstrap CI", "target 150"]


def test_x_time_uses_wall_seconds_and_one_seed_has_no_band(tmp_path):
    run = write_run(tmp_path / "run", [(100, 1.5, 1.0), (200, 2.5, 5.0), (300, 4.0, 7.0)])
    figure = plot_runs([run], x="time")

    [axes] = figure.axes
    assert axes.get_xlabel() == "wall-clock (s)"
    [curve] = _curves(axes)
    np.testing.assert_allclose(curve.get_xdata(), [1.5, 2.5, 4.0])
    np.testing.assert_allclose(curve.get_ydata(), [1.0, 5.0, 7.0])
    assert not axes.collections
    assert _legend_texts(axes) == ["CartPole-v1 bbrl_ppo ppo_clip: 1 seed (no CI)"]


def test_figure_is_outside_pyplot_and_shows_as_png(tmp_path):
    from matplotlib._pylab_helpers import Gcf

    figure = plot_runs([write_run(tmp_path / "run", [(100, 1.0, 1.0), (200, 2.0, 3.0)])])
    assert not Gcf.get_all_fig_managers()  # no global figure left open behind
    assert figure._repr_png_().startswith(b"\x89PNG")  # what Jupyter shows inline


def test_one_panel_per_env_and_labels_override(tmp_path):
    cartpole = write_experiment(tmp_path / "exp", SEEDS)
    pendulum = write_run(tmp_path / "pend", [(100, 1.0, -900.0)], env="Pendulum-v1")
    peer = write_run(tmp_path / "sb3", [(100, 1.0, 3.0), (400, 2.0, 9.0)], peer="SB3")

    figure = plot_runs([cartpole, pendulum, peer], labels=["ours", "ours", "theirs"])
    panels = [axes for axes in figure.axes if axes.get_visible()]
    assert [axes.get_title() for axes in panels] == ["CartPole-v1", "Pendulum-v1"]
    assert _legend_texts(panels[0]) == [
        "ours: mean of 3 seeds, 95% bootstrap CI",
        "theirs: 1 seed (no CI)",
    ]
    assert _legend_texts(panels[1]) == ["ours: 1 seed (no CI)"]
    assert len(_curves(panels[0])) == 2 and len(_curves(panels[1])) == 1


def test_runs_without_evaluations_are_left_out_with_a_warning(tmp_path):
    experiment = write_experiment(tmp_path / "exp", SEEDS)
    write_run(experiment / "seed-4", [], seed=4)
    with pytest.warns(RunWarning, match="seed-4: no evaluation"):
        figure = plot_runs([experiment])
    assert _legend_texts(figure.axes[0]) == ["exp: mean of 3 seeds, 95% bootstrap CI"]

    only_header = write_run(tmp_path / "new", [])
    with pytest.warns(RunWarning), pytest.raises(InvalidInputError, match="Nothing to plot"):
        plot_runs([only_header])


def test_writes_png_and_svg_and_refuses_other_suffixes(tmp_path):
    experiment = write_experiment(tmp_path / "exp", SEEDS)
    plot_runs([experiment], output="plots/curves.png")
    assert (tmp_path / "plots" / "curves.png").read_bytes().startswith(b"\x89PNG")
    plot_runs([experiment], output="curves.svg")
    assert "<svg" in (tmp_path / "curves.svg").read_text()
    with pytest.raises(InvalidInputError, match=r"must end in \.png or \.svg, not '\.pdf'"):
        plot_runs([experiment], output="curves.pdf")
    with pytest.raises(InvalidInputError, match="x must be one of steps, time"):
        plot_runs([experiment], x="episodes")


def test_cli_plot_writes_the_file(tmp_path, capsys):
    write_experiment(tmp_path / "exp", SEEDS)
    assert main(["plot", "exp"]) == 0
    assert f"written to {tmp_path / 'learning_curves.png'}" in capsys.readouterr().out
    assert (tmp_path / "learning_curves.png").stat().st_size > 0

    argv = ["plot", "exp", "-o", "c.svg", "--x", "time", "--label", "mine", "--target", "50"]
    assert main(argv) == 0
    assert "mine: mean of 3 seeds" in (tmp_path / "c.svg").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plot", "no-such-dir"], "No such run or experiment directory: no-such-dir"),
        (["plot", "exp", "-o", "curves.jpg"], "must end in .png or .svg"),
        (["plot", "exp", "--label", "a", "b"], "2 label(s) for 1 path(s)"),
    ],
)
def test_cli_plot_errors_exit_2_with_one_line(tmp_path, capsys, argv, message):
    write_experiment(tmp_path / "exp", SEEDS)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("bbrl-ppo: error: ") and message in err
    assert len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("curves.*"))


def test_env_step_ticks_are_short():
    from bbrl_ppo.experiments.plotting import _short_count

    assert [_short_count(v) for v in (0, 500, 20_000, 150_000, 1_500_000)] == [
        "0",
        "500",
        "20k",
        "150k",
        "1.5M",
    ]
