"""Notebook 07: the request rate and the p95 latency a student computes from two scrapes of
their server's ``/metrics``, with a function of their own.

The check calls the function on tables it makes for this call (scrapes in the format of
``labkit.measure.metrics.scrape``, with counts drawn per run, a p95 in a different bucket
each time, and rows a careless count includes: health probes, refused requests, counts
from before the first scrape), and on the notebook's own scrapes of a real load; it then
compares the rate with what the load generator counted on its side.

A p95 read off a histogram is known only to its bucket: MLServer's REST histogram has
bounds 5, 10, 25, 50, 75, 100, 250, 500, 750 ms, 1, 2.5, 5, 7.5, 10 s. Any estimate inside
the bucket that holds the 95th percentile passes (Prometheus' ``histogram_quantile``
interpolates linearly inside it; the lower or upper bound is as right).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

from labkit.checks.feedback import CheckFailed, how_rounded, passed
from labkit.checks.histogram import (BOUNDS, between, bucket_of, count_all, first_bound, in_bucket,
                                    infer_buckets, mean_ms)
from labkit.measure.metrics import INFER_PATH, REST_DURATION

if TYPE_CHECKING:
    from labkit.measure.loadgen import LoadResult

# A drawn request's seconds, by its bucket (the middle; 15 s past the last bound), for the _sum.
MIDPOINTS = np.array([(lower + upper) / 2 for lower, upper in zip((0.0,) + BOUNDS[:-2], BOUNDS[:-1])] + [15.0])
CREATED = 1.7e9  # the _created samples: when the server first counted (a timestamp)
RATE_TOLERANCE = 0.10  # against the load generator's own count over the same seconds
# The rate from the scrapes, exact to this share: a rate kept to 5 decimals is the rate (helper
# session 14: it passed on 12 draws of 40 under 1e-6); one kept to 2 is not.
RATE_EXACT = 1e-4
Reader = Callable[[pd.DataFrame, pd.DataFrame, float], tuple]


def served_rate_and_p95(read: Reader, before: pd.DataFrame, after: pd.DataFrame, seconds: float,
                        load: LoadResult | None = None) -> None:
    """``read(before, after, seconds)`` returns (successful inference requests per second,
    their p95 latency in milliseconds) between two scrapes: right on three drawn pairs of
    scrapes and on the notebook's own, whose rate agrees with the load generator's."""
    misses = []
    for case, drawn in enumerate(_drawn_cases(np.random.default_rng())):
        made_before, made_after, span, expected_rate, bucket = drawn
        try:
            _compare(read, made_before, made_after, span, expected_rate, bucket, f"drawn scrapes {case + 1} of 3")
        except _P95Miss as miss:
            misses.append(miss)
    if misses:
        raise _name_p95_misses(misses)
    passed("3 pairs of scrapes drawn for this check: the rate of successful inference requests between them and "
           "their p95, in the right bucket, in milliseconds")
    count, buckets = between(before, after)
    if count <= 0:
        raise CheckFailed("The notebook's two scrapes hold no successful inference request between them.",
                          "Run the cells from the load test on: before, the load, after.")
    try:
        rate, p95 = _compare(read, before, after, seconds, count / seconds, bucket_of(buckets, 0.95), "your scrapes")
    except _P95Miss as miss:
        raise _name_p95_misses([miss]) from None
    if load is not None:
        measured = load.summary["throughput_rps"] * load.summary["seconds"] / seconds
        if abs(rate - measured) > RATE_TOLERANCE * measured:
            raise CheckFailed(f"From your scrapes: {rate:.2f} requests/s; the load generator counted {measured:.2f} "
                              f"over the same {seconds:g} s (more than {RATE_TOLERANCE:.0%} apart).",
                              "Divide by the seconds between the scrapes you were given.")
        passed(f"your scrapes: {rate:.2f} requests/s, p95 {p95:.0f} ms on the server; the load generator counted "
               f"{measured:.2f} requests/s (within {RATE_TOLERANCE:.0%}) and measured p95 "
               f"{load.summary['p95_ms']:.0f} ms on its side")


def _compare(read: Reader, before: pd.DataFrame, after: pd.DataFrame, seconds: float, expected_rate: float,
             bucket: tuple[float, float], what: str) -> tuple[float, float]:
    given_before, given_after = before.copy(), after.copy()
    try:
        answer = read(given_before, given_after, seconds)
    except NotImplementedError:
        raise CheckFailed("The function is not written yet (it raises NotImplementedError).",
                          "Replace the placeholder lines with your code.") from None
    except Exception as error:
        empty = (" Did your selection keep any row? The REST histogram's rows carry path, method, status_code "
                 "and le, and no model (their model column is empty); label values are text ('200', not 200)."
                 if isinstance(error, (KeyError, IndexError, ZeroDivisionError)) else "")
        if isinstance(error, AttributeError) and re.search(r"'(function|method)' object", str(error)):
            # helper session 8: rows.le, named by Python's words alone
            empty = (" An attribute gave a pandas method where a column was meant: a column named like a method "
                     "(le, count, sum) read as table.name is the method, not the column.")
        raise CheckFailed(f"On {what}, the function raised {type(error).__name__}: {error}.{empty}",
                          "It gets two tables from metrics.scrape and the seconds between them.") from None
    for name, given, kept in (("before", given_before, before), ("after", given_after, after)):
        if not given.equals(kept):
            # helper session 8: rows dropped from the caller's scrape in place passed; the notebook's
            # own scrapes are read again by later cells
            raise CheckFailed(f"On {what}, the function changed the scrape it was given as {name} (its rows or "
                              "values): the caller's tables are not the function's to change.",
                              "Select from the scrapes into new tables instead of changing them.")
    if isinstance(answer, (tuple, list)) and any(isinstance(value, (str, bytes)) for value in answer):
        # helper session 13: f"{rate:.2f}" was named as rounded, text in the p95 as "not two numbers"
        raise CheckFailed(f"On {what}, the function returned {answer!r}: text, a number formatted for reading.",
                          "Return the two numbers; format them where you print them.")
    try:
        rate, p95 = (float(value) for value in answer)
    except (TypeError, ValueError):
        raise CheckFailed(f"On {what}, the function returned {answer!r}: not two numbers.",
                          "Return (requests per second, p95 in milliseconds).") from None
    if math.isclose(p95, expected_rate, rel_tol=1e-6) and in_bucket(rate, bucket):
        raise CheckFailed(f"On {what}, the function returned ({rate:.4g}, {p95:.4g}): the right two numbers, in the "
                          "other order.", "Return (requests per second, p95 in milliseconds).")
    if not math.isclose(rate, expected_rate, rel_tol=RATE_EXACT):
        mistake = _rate_mistake(rate, expected_rate, before, after, seconds) or _reads_the_notebook(read)
        raise CheckFailed(f"On {what}, the rate is {rate:.4g} requests/s; between the scrapes the server answered "
                          f"another number of successful inference requests per second. {mistake}".rstrip(),
                          "Count successful (200) requests to the inference path only, between the two scrapes, and "
                          "divide by the seconds between them.")
    # The +Inf bucket has no upper bound: Prometheus answers its lower one; anything above it is as right.
    if not in_bucket(p95, bucket):
        raise _P95Miss(what, p95, before, after, bucket)
    return rate, p95


class _P95Miss(Exception):
    """A p95 outside the right bucket: named once every drawn case is in (one number can fit
    two mistakes; the cases together tell them apart)."""

    def __init__(self, what: str, p95: float, before: pd.DataFrame, after: pd.DataFrame, bucket: tuple) -> None:
        super().__init__(what)
        self.what, self.p95, self.before, self.after, self.bucket = what, p95, before, after, bucket


CARELESS_ROWS = {(True, False): "health probes", (False, True): "refused requests", (True, True): "every request"}


def _name_p95_misses(misses: list[_P95Miss]) -> CheckFailed:
    """The mistake that explains every missed p95, named on the first miss."""
    first = misses[0]
    on = f"On {first.what}, the p95 is {first.p95:.4g}"

    def every(holds: Callable[[_P95Miss], bool]) -> bool:
        return all(holds(miss) for miss in misses)

    def mean_of(miss: _P95Miss) -> float:
        return mean_ms(miss.before, miss.after)

    if every(lambda miss: math.isclose(miss.p95, mean_of(miss), rel_tol=1e-6)
             or math.isclose(1000 * miss.p95, mean_of(miss), rel_tol=1e-6)):
        return CheckFailed(f"{on}: that is the mean latency of these requests (their _sum over their _count), not the "
                           "time 95% of them stayed within.",
                           "A mean hides the slow tail that a p95 is about; the buckets say how many requests "
                           "finished within each bound.")
    if every(lambda miss: in_bucket(1000 * miss.p95, miss.bucket) and (math.isfinite(miss.bucket[1])
                                                                         or 1000 * miss.p95 <= 10_000 * 10)):
        return CheckFailed(f"{on}: that is the right latency in seconds, and the exercise asks for milliseconds.",
                           "The histogram's bounds (le) are in seconds.")
    if every(lambda miss: in_bucket(miss.p95 / 1000, miss.bucket)):
        return CheckFailed(f"{on}: that is the right latency in microseconds, and the exercise asks for "
                           "milliseconds.", "The histogram's bounds (le) are in seconds.")
    def read_as(miss: _P95Miss, **mistake) -> bool:
        """The miss lies in the bucket that ends at the bound the mistaken reading finds, another
        bucket than the right one (a neighbour's shared bound included: a p50 read inside the
        bucket just below the p95's was left unnamed in 1 run of 5)."""
        _, buckets = between(miss.before, miss.after)
        bound = first_bound(buckets, **mistake)
        lower = max((other for other in BOUNDS if other < bound), default=0.0)
        return (lower, bound) != tuple(miss.bucket) and in_bucket(miss.p95, (lower, bound))

    def careless(any_path: bool, any_status: bool) -> Callable[[_P95Miss], bool]:
        def explained(miss: _P95Miss) -> bool:
            bucket = bucket_of(infer_buckets(miss.after, any_path, any_status)
                                - infer_buckets(miss.before, any_path, any_status), 0.95)
            return bucket != miss.bucket and in_bucket(miss.p95, bucket)
        return explained

    def percentile_of_bounds(miss: _P95Miss) -> bool:
        """The miss is np.percentile over each request put at its bucket's upper bound (the finite
        ones): it interpolates between two bounds (helper session 10: named by the draw)."""
        _, buckets = between(miss.before, miss.after)
        counts = buckets.diff().fillna(buckets.iloc[0]).clip(lower=0)
        finite = [(bound, int(round(count))) for bound, count in counts.items() if math.isfinite(bound) and count > 0]
        if not finite:
            return False
        at_bounds = np.repeat([bound for bound, _ in finite], [count for _, count in finite])
        return math.isclose(miss.p95, 1000 * float(np.percentile(at_bounds, 95)), rel_tol=1e-6)

    # Each way of reading the buckets wrong: (what it did, the hint, whether it gives a miss).
    # One number can fit several (helper session 5: a p99 was named as "> for >=", which gives
    # the same bound on the drawn scrapes): named when one or two fit every miss, else none.
    readings = [
        ("the bounds were taken in the order of their text ('10.0' sorts before '2.5'), not of their values",
         "The le labels are text, as every label value is.", lambda miss: read_as(miss, text_order=True)),
        ("a bound past the first one that 95% of the requests reach (on these scrapes one bound holds exactly 95% "
         "of them, and the p95 is that bound)",
         "95% of the requests took at most a bound once its cumulative count reaches 95%.",
         lambda miss: read_as(miss, strict=True)),
        ("95% of the count rounded down to a whole request, a rank one short of 95% where the count is not a "
         "multiple of 20 (on these scrapes a bucket ends one request short of it)",
         "The rank is 0.95 times the count as it is; a cumulative count reaches it only at or past it.",
         lambda miss: read_as(miss, floored=True)),
        ("the 95th percentile of the requests each put at its bucket's upper bound, interpolated between two "
         "bounds (np.percentile over the bounds repeated by their counts): a value no bucket says",
         "The p95 lies in the first bucket whose cumulative count reaches 95%.", percentile_of_bounds),
        ("the bound after the one that 95% of the requests reach: one bucket too far",
         "The p95 lies in the first bucket whose cumulative count reaches 95%.",
         lambda miss: read_as(miss, one_past=True)),
        ("95% of the requests that took under 10 s, not of all of them (the +Inf bucket counts them all)",
         "The slowest requests are the ones a p95 is about.", lambda miss: read_as(miss, finite_only=True)),
        # helper session 6: a bound times 100 was named as another bucket. A bucket's bounds are
        # often ten times apart, so this reading may fit beside a percentile's: both are named.
        ("the latency in hundredths of a second (seconds times 100), not in milliseconds",
         "The histogram's bounds (le) are in seconds; a second has 1000 milliseconds.",
         lambda miss: in_bucket(10 * miss.p95, miss.bucket) if math.isfinite(miss.bucket[1])
         else math.isclose(10 * miss.p95, 1000 * miss.bucket[0])),  # +Inf: read at the last bound
        *[(f"the {round(100 * q):g}th percentile of these requests, not the 95th",
           "Read the bound that 95% of the requests reach.", lambda miss, q=q: read_as(miss, quantile=q))
          for q in (0.5, 0.9, 0.99)],
        *[(f"the 95th percentile of {rows} and successful inference requests together",
           "Keep the rows of successful inference requests only, for the p95 as for the rate.",
           careless(any_path, any_status)) for (any_path, any_status), rows in CARELESS_ROWS.items()],
    ]
    fitting = [(what, hint) for what, hint, gives in readings if every(gives)]
    if len(fitting) == 1:
        return CheckFailed(f"{on} ms: {fitting[0][0]}.", fitting[0][1])
    if len(fitting) == 2:
        return CheckFailed(f"{on} ms, which two readings give on these scrapes: {fitting[0][0]}; or "
                           f"{fitting[1][0]}.", f"{fitting[0][1]} {fitting[1][1]}")
    return CheckFailed(f"{on} ms; 95% of these requests took at most a time in another bucket of the histogram.",
                       "Find the first bound whose cumulative count, between the scrapes, reaches 95% of all "
                       "requests; the p95 lies in the bucket that ends there.")


def _rate_mistake(rate: float, expected: float, before: pd.DataFrame, after: pd.DataFrame, seconds: float) -> str:
    """What the wrong rate looks like (each mistake has its own message)."""
    since_start = between(after.iloc[0:0], after)[0] / seconds
    everything = count_all(after) - count_all(before)
    lost = "the count is right, and the rate lost its digits (round where you print it, not in what the function " \
           "returns)."
    if rate not in (expected, 0):  # 0: no request found (below), not a rate rounded away
        # helper sessions 12-14: round(rate, 1), round(rate, 4), int(rate), math.ceil(rate), a
        # float16 or a rate cut to 2 decimals were told "another number": every reading that gives
        # the rate, the finest first (7.0 is 6.96 rounded to 1 decimal, to 0, and up).
        finest = how_rounded([rate], [expected]) or ""
        readings = [finest] if finest and " 0 decimal" not in finest else []
        if finest != "through float16" and math.isclose(rate, float(np.float16(expected)), rel_tol=1e-6):
            # CI, stop 52: a rate through float16 was 1.874762 rounded to 3 decimals too, and named so only
            readings.append("through float16")
        readings += [how for how, whole in (("rounded to a whole number", round(expected)),
                                            ("cut to a whole number", math.floor(expected)),
                                            ("rounded up to a whole number", math.ceil(expected))) if rate == whole]
        if readings:
            return (f"It is {expected:.7g} {readings[0]}" + (f" (or {', '.join(readings[1:])})" if readings[1:] else "")
                    + f": {lost}")
    if math.isclose(rate, -expected, rel_tol=1e-6):
        return "It is negative: the counts went down from the first scrape to the second, taken the other way round."
    if math.isclose(rate, since_start, rel_tol=1e-6):
        return "It counts every request since the server started, not those between the scrapes."
    if math.isclose(rate, everything / seconds, rel_tol=1e-6):
        return "It counts health probes or refused requests too."
    if math.isclose(rate, expected * seconds, rel_tol=1e-6):
        return "It is a count, not a rate."
    if math.isclose(rate, 60 * expected, rel_tol=1e-6):  # helper session 14
        return "It is per minute (60 times the rate per second)."
    if rate == 0:
        # helper session 8: a rate read from gRPC's counter (no row here) was blamed on '200' alone
        return ("It found no request at all: label values are text (compare with '200', not 200), and the "
                "requests were sent over REST (MLServer's gRPC metrics count gRPC calls only).")
    return ""


def _reads_the_notebook(read: Reader) -> str:
    """Names the notebook's values the function reads instead of its arguments (helper session 15:
    the seconds of the notebook's own load, right on its scrapes only, were told another count)."""
    from labkit.checks.budget_pick import notebook_data_read

    names = notebook_data_read(read)
    return (f"The function reads {', '.join(names)} from the notebook: on scrapes it was not measured with, only "
            "what the function is given holds, the seconds between them too." if names else "")


def _drawn_case(rng: np.random.Generator, case: int) -> tuple:
    """Scrapes before and after, in metrics.scrape's format: earlier traffic before, new
    successful inference requests with a p95 in a bucket drawn for this case (the third
    case: the +Inf bucket, over 10 s), and requests a careless count includes: many fast
    readiness probes and slow refused requests, each enough to move the p95 to another bucket."""
    finite = len(BOUNDS) - 1
    # The bucket that holds the tail: under 1 s (case 0, with requests over 10 s as well), from
    # 1 to 5 s where text order and number order of the bounds part ('10.0' < '2.5'; case 1; not
    # 5 to 7.5 s, where the bound one bucket too far is the 10 s that text order reads too),
    # over 10 s (case 2).
    slow = (int(rng.integers(5, 10)), int(rng.integers(10, 12)), finite)[case]
    new = np.zeros(len(BOUNDS))
    if case == 0:
        # 20a requests: exactly 95% of them within the slow bucket's bound (a reading with > for >=
        # passes it), the other 5% over 10 s. Exactly 90% within the bound three below (the p90
        # there; the p75 one lower), and the slow bucket and the one below it hold at most 95% of the 5%: left out of
        # the total, the p95 falls two buckets lower, where neither the p90 nor the p95 is.
        above = int(rng.integers(5, 12))
        new[finite], new[slow] = above, rng.integers(1, 3)
        new[slow - 1] = rng.integers(1, above - new[slow])
        new[slow - 2] = above - new[slow] - new[slow - 1]
        first = int(rng.integers(15 * above, 18 * above))  # the median and the p75 below the p90's bucket
        new[slow - 4], new[slow - 3] = first, 18 * above - first
    elif case == 1:
        # Most in the bucket three below the tail's (the median and the p90 there: a median read on
        # the bound that starts the tail's bucket passed, in 1 run of 100), a few in the next, none
        # just below the tail's, and just over 5% of all in the tail's. The bucket two below the
        # tail's then holds floor(0.95 * count), one request short of the rank: a rank rounded down
        # (int(0.95 * count)) stops there, below the right bucket's lower bound (helper session 8:
        # ticked 12 of 12). A count that is a multiple of 20 has no fraction to drop: never drawn.
        new[slow - 3] = rng.integers(20, 60)
        new[slow - 2] = rng.integers(1, new[slow - 3] // 20 + 1)
        if (new[: slow].sum() + new[: slow].sum() // 19 + 1) % 20 == 0:
            new[slow - 3] += 1
        new[slow] = new[: slow].sum() // 19 + 1
    else:
        new[slow - 3: slow] = rng.integers(20, 60, 3)
        new[slow - 1] = rng.integers(1, 6)  # few below the tail's bucket, as in case 1
        # Over 5% of all, so the p95 falls in it; whole requests, as every real bucket counts them
        # (helper session 13: 122.36 requests failed int(count), a right answer).
        new[slow] = rng.integers(3, 12) + np.ceil(new[: slow].sum() * 0.06)
        new[min(slow + 1, finite - 1)] += rng.integers(0, 2)
    old = rng.integers(0, 30, len(BOUNDS)).astype(float)
    seconds = float(rng.uniform(5, 40))

    def scrape(infer: np.ndarray, probes: float, refused: float, metadata: float, unprocessable: float,
               order: np.random.Generator | None = None) -> pd.DataFrame:
        # Every sample a real scrape of these requests has (starlette-exporter's histogram with
        # its _sum and _created, its request counter), so that any correct way of reading them works;
        # two probe paths and two refusals (400, 422), so that "not the probe" or "not 400" is not
        # "successful inference"; with ``order``, the rows in another order than the other scrape's.
        fastest = np.eye(len(BOUNDS))[0]
        rows = []
        for path, status, counts in ((INFER_PATH, "200", infer), ("/v2/models/{model_name}/ready", "200",
                                                                   fastest * probes),
                                     ("/v2/models/{model_name}", "200", fastest * metadata),
                                     (INFER_PATH, "400", np.eye(len(BOUNDS))[refused_at] * refused),
                                     (INFER_PATH, "422", np.eye(len(BOUNDS))[refused_at] * unprocessable)):
            method = "POST" if path == INFER_PATH else "GET"
            labels = f"app_name=mlserver,method={method},path={path},status_code={status}"
            cumulative = np.cumsum(counts)
            for bound, value in zip(BOUNDS, cumulative):
                le = "+Inf" if math.isinf(bound) else repr(bound)
                rows.append({"metric": REST_DURATION, "sample": f"{REST_DURATION}_bucket", "model": "",
                             "labels": labels.replace("method=", f"le={le},method="), "value": float(value)})
            total = float(cumulative[-1])
            for metric, sample, value in (
                    (REST_DURATION, f"{REST_DURATION}_count", total),
                    (REST_DURATION, f"{REST_DURATION}_sum", float(np.dot(counts, MIDPOINTS))),
                    (f"{REST_DURATION}_created", f"{REST_DURATION}_created", CREATED),
                    ("rest_server_requests", "rest_server_requests_total", total),
                    ("rest_server_requests_created", "rest_server_requests_created", CREATED)):
                rows.append({"metric": metric, "sample": sample, "model": "", "labels": labels, "value": value})
        rows.append({"metric": "model_infer_request_success", "sample": "model_infer_request_success_total",
                     "model": "tinyvit", "labels": "", "value": float(infer.sum())})
        table = pd.DataFrame(rows, columns=["metric", "sample", "model", "labels", "value"])
        return table if order is None else table.sample(frac=1, random_state=order).reset_index(drop=True)

    # Probes: 20 times the new requests, in the fastest bucket (counted in, the p95 drops);
    # refused: a third of them three buckets slower (counted in, the p95 moves up, past the bucket
    # after the right one: helper session 8, a bound one bucket too far was named as refused
    # requests counted, whose bucket began at that bound), two where three is past +Inf, or,
    # when the tail is already in +Inf, 20 times them in a fast bucket.
    refused_at, refused_new = ((min(slow + 3, finite), np.ceil(new.sum() / 3)) if slow + 2 <= finite
                               else (1, 20 * new.sum()))
    probes, refused = float(rng.integers(5, 20)), float(rng.integers(1, 10))
    metadata, unprocessable = float(rng.integers(1, 5)), float(rng.integers(0, 4))
    before = scrape(old, probes, refused, metadata, unprocessable)
    after = scrape(old + new, probes + 20 * new.sum(), refused + refused_new, metadata + rng.integers(2, 9),
                   unprocessable + rng.integers(1, 6), order=rng)
    count, buckets = between(before, after)
    bucket = bucket_of(buckets, 0.95)
    return before, after, seconds, count / seconds, bucket


def _drawn_cases(rng: np.random.Generator, tries: int = 500) -> list[tuple]:
    """Three drawn cases (0, 1, 2) on which the ways of reading a p95 that students write
    each miss the right bucket at least once: the mean (_sum over _count), the bounds in text
    order (pandas groups the le labels as text: '10.0' before '2.5'), the 95% of the requests
    under 10 s only. Drawn again until they do."""
    for _ in range(tries):
        cases = [_drawn_case(rng, case) for case in range(3)]
        misses = {"mean": False, "text order": False, "finite only": False, "strict": False, "floored": False}
        for before, after, _, _, bucket in cases:
            _, buckets = between(before, after)
            for mistake, value in (("mean", mean_ms(before, after)),
                                   ("text order", 1000 * first_bound(buckets, text_order=True)),
                                   ("finite only", 1000 * first_bound(buckets, finite_only=True)),
                                   ("strict", 1000 * first_bound(buckets, strict=True)),
                                   ("floored", 1000 * first_bound(buckets, floored=True))):
                misses[mistake] |= not in_bucket(value, bucket)
        if all(misses.values()):
            return cases
    raise AssertionError(f"no three drawn cases tell every way of reading a p95 apart in {tries} tries")


