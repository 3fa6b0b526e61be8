"""Generate the AV-digits dataset (spoken digits + handwritten digit frames).

Needs `apt-get install -y espeak-ng flite sox` and `pip install -e .[av]`.

Example:
    python scripts/make_av_digits.py --out data/av_digits --n 2000 --seed 0 \
        --image_noise 0.3
"""

from absl import app, flags

from flags_first import import_before_tensorflow

cli = import_before_tensorflow("keras_gblend.experiment.cli")

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("out", None, "Output folder.", required=True)
    flags.DEFINE_integer("n", 2000, "Number of clips.", lower_bound=20)
    flags.DEFINE_integer("seed", 0, "Seed of every random choice.")
    flags.DEFINE_float("test_fraction", 0.2, "Share of clips in test.csv.",
                       lower_bound=0.05, upper_bound=0.5)
    flags.DEFINE_float("audio_noise", 0.0, "Std of white noise on audio.",
                       lower_bound=0.0)
    flags.DEFINE_float("image_noise", 0.0, "Std of pixel noise on frames.",
                       lower_bound=0.0)
    flags.DEFINE_integer("workers", 2, "Parallel synthesis jobs.", lower_bound=1)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    with cli.quiet_tensorflow():
        from keras_gblend.datasets import make_av_digits
    meta = make_av_digits(
        FLAGS.out, n=FLAGS.n, seed=FLAGS.seed, test_fraction=FLAGS.test_fraction,
        audio_noise=FLAGS.audio_noise, image_noise=FLAGS.image_noise,
        workers=FLAGS.workers)
    print(f"Wrote {meta['n']} clips to {FLAGS.out}")


if __name__ == "__main__":
    define_flags()
    cli.run(main)
