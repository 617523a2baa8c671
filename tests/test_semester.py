"""A semester without surprises (#20): the kit's data is stable across releases, ..."""
import numpy as np
from rnnkit import expected

from autograder import kitdata
from submissions import REPO


def test_release_leaves_unchanged_kit_data_byte_identical(tmp_path):
    kit_data = tmp_path / "expected.npz"
    kitdata.write(REPO / "solutions", kit_data)
    first = kit_data.read_bytes()
    kit_data.touch()
    stamps = kitdata.write(REPO / "solutions", kit_data)
    assert kit_data.read_bytes() == first
    assert expected.ShippedData(kit_data).stamps == stamps
    kit_data.unlink()   # a fresh write of the same data is the same bytes (fixed zip dates, order)
    kitdata.write(REPO / "solutions", kit_data)
    assert kit_data.read_bytes() == first


def test_last_bit_noise_keeps_the_file_and_a_real_change_rewrites_it(tmp_path):
    path, K = tmp_path / "expected.npz", expected.entry_key("t", "c")
    records = {K: {"inputs": {"x": np.arange(3), "w": np.linspace(0, 1, 4)},
                       "outputs": [np.array([[0.1, 0.2], [0.3, 1e-3]])]}}
    tasks = {"01_a": ["t"]}
    stamps = expected.save(path, records, tasks)
    first = path.read_bytes()
    noisy = {K: {"inputs": {"x": np.arange(3), "w": np.linspace(0, 1, 4) * (1 + 1e-15)},
                     "outputs": [np.array([[0.1, 0.2], [0.3, 1e-3]]) + 1e-17]}}
    assert expected.save(path, noisy, tasks) == stamps
    assert path.read_bytes() == first
    changed = {K: {"inputs": records[K]["inputs"], "outputs": [np.array([[0.1, 0.2], [0.3, 2e-3]])]}}
    expected.save(path, changed, tasks)
    assert path.read_bytes() != first
    np.testing.assert_array_equal(expected.ShippedData(path).outputs("t", "c")[0], [[0.1, 0.2], [0.3, 2e-3]])
    added = {**changed, expected.entry_key("t", "d"): {"outputs": [np.zeros(2)]}}
    before = path.read_bytes()
    expected.save(path, added, tasks)
    assert path.read_bytes() != before and expected.ShippedData(path).outputs("t", "d")[0].shape == (2,)
