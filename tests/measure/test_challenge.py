"""labkit.measure.challenge: a served model against its engine alone, in rounds that are measured
again when the machine was busy, and the points a ratio earns."""

import time

import numpy as np
import pytest

from labkit.client import CAT, encode_jpeg, load_image
from labkit.measure import challenge

@pytest.mark.parametrize("ratio, share", [(0.0, 0.0), (0.44, 0.0), (0.45, 0.5), (0.5, 0.5), (0.69, 0.5),
                                          (0.70, 1.0), (0.75, 1.0), (1.3, 1.0)])
def test_points_by_ratio_with_a_band_below_each_threshold(ratio, share):
    assert challenge.points(ratio) == share


def test_points_read_thresholds_in_order_and_a_band_of_zero():
    assert challenge.points(0.74, band=0.0) == 0.5 and challenge.points(0.75, band=0.0) == 1.0
    assert challenge.points(0.3, thresholds=((0.25, 0.2), (0.5, 0.6))) == 0.2


def test_the_engine_in_process_decodes_every_image_and_counts_its_calls():
    jpeg = encode_jpeg(load_image(CAT))
    seen = []

    def classify(images):
        seen.append(len(images))
        assert all(image.dtype == np.uint8 and image.ndim == 3 for image in images)
        time.sleep(0.01)

    rate, calls = challenge.in_process_rate(classify, jpeg, batch_size=4, seconds=0.1)
    assert set(seen) == {4} and len(calls) == len(seen) >= 2
    assert 4 * len(seen) / 0.1 * 0.3 < rate < 4 / 0.01 * 1.05  # about 4 images per call of ~10 ms
    assert all(ms >= 10 for ms in calls)


class Shares:
    """Stands for OtherLoad in these tests: the others' share of each measurement, in turn (the
    real reading is tests/measure/test_machine.py's; here the machine beside the test must not
    decide, as the other streams of `make test` run beside it)."""

    def __init__(self, *shares):
        self.shares = list(shares)

    def __call__(self):
        share = self.shares.pop(0)

        class Reading:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.share = share
        return Reading()


def test_rounds_give_the_median_ratio_and_its_spread():
    served = iter([8.0, 9.0, 7.0])
    result = challenge.against_limit(lambda: 10.0, lambda: next(served), rounds=3, load=Shares(0.0, 0.1, 0.2))
    assert result.ratio == pytest.approx(0.8) and result.spread == pytest.approx((0.7, 0.9))
    assert result.measured_again == 0 and not result.busy


def test_a_round_during_which_other_processes_took_the_cpu_is_measured_again():
    served = iter([2.0, 8.0, 9.0])  # the busy try served less: it is not kept
    result = challenge.against_limit(lambda: 10.0, lambda: next(served), rounds=2, load=Shares(0.6, 0.1, 0.0))
    assert result.measured_again == 1 and not result.busy
    assert [round_.served_images_per_s for round_ in result.rounds] == [8.0, 9.0]


def test_a_machine_busy_on_every_try_is_said_so_not_guessed_from():
    result = challenge.against_limit(lambda: 10.0, lambda: 5.0, rounds=1, tries=3, load=Shares(0.5, 0.6, 0.7))
    assert result.measured_again == 2 and result.busy and result.rounds[0].others_cpu_share == 0.7


def test_the_real_reading_of_the_machine_is_the_default():
    result = challenge.against_limit(lambda: 10.0, lambda: 5.0, rounds=1, tries=1)
    assert 0.0 <= result.rounds[0].others_cpu_share <= 1.0 and result.ratio == pytest.approx(0.5)


def test_an_engine_that_served_nothing_is_an_error_not_a_division_by_zero():
    with pytest.raises(ValueError, match="served no image"):
        challenge.against_limit(lambda: 0.0, lambda: 1.0, rounds=1)
    with pytest.raises(ValueError, match="at least 1"):
        challenge.against_limit(lambda: 1.0, lambda: 1.0, rounds=0)


def test_what_the_measurements_report_besides_their_rates_is_kept_with_their_round():
    served = iter([(8.0, {"p50_ms": 30.0}), (2.0, {"p50_ms": 90.0}), (9.0, {"p50_ms": 31.0})])
    result = challenge.against_limit(lambda: (10.0, {"one_image_ms": 20.0}), lambda: next(served), rounds=2,
                                     load=Shares(0.0, 0.9, 0.1))
    assert [round_.details for round_ in result.rounds] == [{"one_image_ms": 20.0, "p50_ms": 30.0},
                                                            {"one_image_ms": 20.0, "p50_ms": 31.0}]


def test_each_kept_round_is_reported_as_it_is_kept_not_the_busy_tries():
    served = iter([8.0, 2.0, 9.0])
    seen = []
    challenge.against_limit(lambda: 10.0, lambda: next(served), rounds=2, load=Shares(0.0, 0.9, 0.1),
                            on_round=lambda number, round_: seen.append((number, round_.served_images_per_s)))
    assert seen == [(1, 8.0), (2, 9.0)]


def test_a_round_measured_again_is_said_before_it_is_measured_again():
    served = iter([8.0, 2.0, 9.0])
    said = []
    challenge.against_limit(lambda: 10.0, lambda: next(served), rounds=2, load=Shares(0.0, 0.9, 0.1),
                            on_round=lambda number, round_: said.append(("kept", number)),
                            on_again=lambda number, round_: said.append(("again", number, round_.others_cpu_share)))
    assert said == [("kept", 1), ("again", 2, 0.9), ("kept", 2)]


def _verdict(round_):
    return (challenge.points(round_.ratio),)


def test_the_rounds_stop_once_most_of_them_agree_on_the_points():
    # Two rounds in the band of all the points: the median of three is there whatever the third
    # measures, so it is not measured.
    served = iter([9.0, 8.0, 1.0])
    result = challenge.against_limit(lambda: 10.0, lambda: next(served), rounds=3, load=Shares(0.0, 0.0, 0.0),
                                     verdict=_verdict)
    assert [round_.served_images_per_s for round_ in result.rounds] == [9.0, 8.0]
    assert challenge.points(result.ratio) == 1.0


def test_rounds_that_disagree_on_the_points_are_all_measured():
    served = iter([9.0, 6.0, 8.0])
    result = challenge.against_limit(lambda: 10.0, lambda: next(served), rounds=3, load=Shares(0.0, 0.0, 0.0),
                                     verdict=_verdict)
    assert len(result.rounds) == 3 and result.ratio == pytest.approx(0.8)


def test_every_number_of_the_verdict_needs_its_majority():
    # The ratio agrees after two rounds, the latency verdict does not: a third round.
    rounds = [challenge.Round(10.0, 9.0, 0.0, {"slow": slow}) for slow in (False, True, True)]
    by_both = lambda round_: (challenge.points(round_.ratio), round_.details["slow"])  # noqa: E731
    assert not challenge.decided(rounds[:2], 3, by_both) and challenge.decided(rounds, 3, by_both)
    assert challenge.decided(rounds[1:], 3, by_both)
    assert not challenge.decided(rounds[:1], 1 + 2, by_both) and challenge.decided(rounds[:1], 1, by_both)


def test_stopping_early_gives_the_points_that_every_round_would():
    # Drawn rounds around the thresholds: the points of the median of the rounds kept are the
    # points of the median of all of them, for 3 and for 5 rounds.
    rng = np.random.default_rng(41)
    stopped = 0
    for rounds in [3, 5] * 200:
        rates = list(rng.uniform(3.0, 9.0, rounds))
        every = challenge.against_limit(lambda: 10.0, iter(rates).__next__, rounds=rounds,
                                        load=Shares(*[0.0] * rounds))
        early = challenge.against_limit(lambda: 10.0, iter(rates).__next__, rounds=rounds,
                                        load=Shares(*[0.0] * rounds), verdict=_verdict)
        assert challenge.points(early.ratio) == challenge.points(every.ratio)
        stopped += len(early.rounds) < rounds
    assert stopped > 50  # the draws stop early often enough to prove something
