"""Analysis: the run's tables read and checked, the numbers computed from them, the
figures and the report. Pandas, seaborn and matplotlib only: nothing here imports Keras,
TensorFlow or JAX (a test imports it with those blocked)."""
