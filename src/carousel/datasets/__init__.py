"""Bundled data and generators of the synthetic tasks of the recurrent-network literature."""

from carousel.datasets.csv import read_csv_series
from carousel.datasets.series import load_air_passengers, load_co2, load_nile, load_sunspots, mackey_glass
from carousel.datasets.tasks import adding_problem

__all__ = [
    "adding_problem",
    "load_air_passengers",
    "load_co2",
    "load_nile",
    "load_sunspots",
    "mackey_glass",
    "read_csv_series",
]
