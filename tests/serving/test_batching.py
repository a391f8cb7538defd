"""Adaptive batching and parallel workers: every caller gets its own answer."""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from labkit.measure import metrics
from labkit.client import InferenceFailed, encode_jpeg, files_request, infer, pixels_request
from tests.helpers.lab import BATCH_CALLERS as CALLERS
from tests.helpers.answers import assert_same, decode_jpeg

pytestmark = pytest.mark.slow


def call_concurrently(function, payloads):
    with ThreadPoolExecutor(len(payloads)) as pool:
        return list(pool.map(function, payloads))


def distinct_images(cat, count, size=None):
    """`count` different images (shifted crops of the cat), optionally of one size."""
    images = []
    for index in range(count):
        image = np.roll(cat, 7 * index, axis=1)
        images.append(image[: size[0], : size[1]] if size else image[: 200 + 5 * index, : 250 + 9 * index])
    return images


def test_same_size_arrays_each_caller_gets_its_own_rows(batching_server, reference, cat):
    images = distinct_images(cat, CALLERS, size=(224, 224))
    before = metrics.scrape(batching_server.metrics_url)
    answers = call_concurrently(lambda image: infer(batching_server.infer_url, pixels_request([image])), images)
    after = metrics.scrape(batching_server.metrics_url)
    expected = reference.probabilities(images)
    for index, answer in enumerate(answers):
        assert_same(answer, expected[index : index + 1])
    # Each caller sent one image: predict() saw more than one per call only if batches formed.
    assert metrics.histogram_mean(before, after, "tinyvit_batch_size", "tinyvit") > 1


def test_mixed_batch_sizes_are_split_correctly(batching_server, reference, cat):
    images = distinct_images(cat, 12, size=(160, 192))
    groups = [images[0:1], images[1:4], images[4:6], images[6:12]]
    answers = call_concurrently(lambda group: infer(batching_server.infer_url, pixels_request(group)), groups)
    for group, answer in zip(groups, answers):
        assert_same(answer, reference.probabilities(group))


def test_encoded_images_of_mixed_sizes_under_batching(batching_server, reference, cat):
    files = [encode_jpeg(image) for image in distinct_images(cat, CALLERS)]
    answers = call_concurrently(lambda data: infer(batching_server.infer_url, files_request([data])), files)
    for data, answer in zip(files, answers):
        assert_same(answer, reference.probabilities([decode_jpeg(data)]))


def test_mixed_size_arrays_under_batching_never_5xx_nor_a_wrong_answer(batching_server, reference, cat):
    images = [cat[:200, :200] if index % 2 else cat[:180, :240] for index in range(CALLERS)]

    def call(image):
        try:
            return infer(batching_server.infer_url, pixels_request([image]))
        except InferenceFailed as error:
            return error

    outcomes = call_concurrently(call, images)
    refused = [outcome for outcome in outcomes if isinstance(outcome, InferenceFailed)]
    assert refused, "expected at least one merged batch of two sizes to be refused"
    for image, outcome in zip(images, outcomes):
        if isinstance(outcome, InferenceFailed):
            assert 400 <= outcome.status < 500
            assert "encoded images" in outcome.message
        else:
            assert_same(outcome, reference.probabilities([image]))


def test_two_parallel_workers_serve_correctly(two_workers_server, reference, cat):
    server = two_workers_server
    images = distinct_images(cat, 8, size=(224, 224))
    answers = call_concurrently(lambda image: infer(server.infer_url, pixels_request([image])), images)
    expected = reference.probabilities(images)
    for index, answer in enumerate(answers):
        assert_same(answer, expected[index : index + 1])
    assert server.scaling["parallel_workers"] == 2
    # Two workers on this machine's cores: each takes its share, not all of them.
    cores = len(os.sched_getaffinity(0))
    assert server.log.count(f"uses {max(1, cores // 2)} torch thread(s)") == 2, server.log_tail()
