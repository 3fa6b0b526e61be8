import numpy as np

import keras_gblend as kg


def test_validation_split_rows_never_reach_estimation(
        toy_data, compiled_toy_model, spy_estimates):
    x, y = toy_data(n=160)
    x = {**x, "a": np.concatenate(
        [x["a"][:, :5], np.arange(160, dtype="float32")[:, None]], axis=1)}
    holdout = ({k: v[100:] for k, v in x.items()}, y[100:])
    x, y = {k: v[:100] for k, v in x.items()}, y[:100]
    calls = spy_estimates
    model = compiled_toy_model()
    model.fit(x, y, validation_split=0.2, epochs=1, verbose=0,
              callbacks=[kg.GBlendCallback(holdout, mode="offline",
                                           estimation_epochs=1, verbose=0)])
    (call,) = calls
    rows = call["train"][0]["a"][:, -1]
    np.testing.assert_array_equal(rows, np.arange(80))  # Keras validates on 80-99
