"""What the library accepts as data: arrays or `tf.data` pipelines,
their checks, and the stratified holdout."""
