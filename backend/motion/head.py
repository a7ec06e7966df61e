"""Small, smooth, seeded head motion as 4x4 poses.

A sum of slow sinusoids per degree of freedom (0.05-0.6 Hz, random phases from the seed),
a deterministic function of time: no jitter by construction, identical at any fps and
under any chunking, and ``amplitude=0`` is exactly still. Default amplitudes are the
rotation/translation spread of the real clips' tracked heads (measured by the data engine
at training time and stored with the weights), times 0.6 because a tracked head also
carries torso sway and tracker noise.
"""

from __future__ import annotations

import numpy as np

DEFAULT_ROT_STD_DEG = (3.0, 3.5, 1.8)  # pitch, yaw, roll, used if the model has none
DEFAULT_TRANS_STD_M = (0.004, 0.003, 0.004)
N_WAVES = 5
SCALE = 0.6


def _rotation(pitch: np.ndarray, yaw: np.ndarray, roll: np.ndarray) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = (np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw),
                              np.cos(roll), np.sin(roll))
    one, zero = np.ones_like(pitch), np.zeros_like(pitch)
    rx = np.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(-1, 3, 3)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    rz = np.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(-1, 3, 3)
    return rz @ ry @ rx


def head_motion(times: np.ndarray, seed: int, amplitude: float = 1.0,
                rot_std_deg=DEFAULT_ROT_STD_DEG, trans_std_m=DEFAULT_TRANS_STD_M
                ) -> np.ndarray:
    """Poses [T, 4, 4] (face space -> the rig's head rest frame) at ``times`` seconds."""
    t = np.asarray(times, dtype=np.float64)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x4EAD])
    freq = np.exp(rng.uniform(np.log(0.05), np.log(0.6), (6, N_WAVES)))
    phase = rng.uniform(0, 2 * np.pi, (6, N_WAVES))
    amp = rng.uniform(0.5, 1.0, (6, N_WAVES)) / np.sqrt(freq)  # slower waves are larger
    amp /= np.sqrt(0.5 * np.sum(amp**2, axis=1, keepdims=True))  # unit std per dof
    waves = np.einsum("dk,dtk->td", amp, np.sin(2 * np.pi * freq[:, None, :] * t[None, :, None]
                                                 + phase[:, None, :]))
    std = np.concatenate([np.radians(rot_std_deg), trans_std_m]) * SCALE * float(amplitude)
    dof = waves * std
    poses = np.zeros((len(t), 4, 4), np.float32)
    poses[:, :3, :3] = _rotation(dof[:, 0], dof[:, 1], dof[:, 2])
    poses[:, :3, 3] = dof[:, 3:]
    poses[:, 3, 3] = 1.0
    return poses
