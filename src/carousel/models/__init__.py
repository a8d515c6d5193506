"""Task-level estimators with scikit-learn conventions: ``Forecaster`` for time series."""

from carousel.models._base import NotFittedError
from carousel.models.forecaster import Backtest, Forecaster, recurrent_layers
from carousel.models.metrics import MetricsTable, mae, mape, metrics_table, rmse

__all__ = [
    "Backtest",
    "Forecaster",
    "MetricsTable",
    "NotFittedError",
    "mae",
    "mape",
    "metrics_table",
    "recurrent_layers",
    "rmse",
]
