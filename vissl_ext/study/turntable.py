"""A procedural turntable: textured 3D objects rotating about a tilted axis, rendered with numpy
and OpenCV, written as one folder of frames per object in pose order (object identity = class).

Each object is a random convex polyhedron or a random extruded star polygon; every face has a
colour from the object's palette and its own stripe or checker pattern fixed to the surface, so
the pattern moves with the face as the object turns. Lambertian shading from a fixed light makes
the same face look different from pose to pose. Orthographic camera, a grey background with a
little per-frame noise shared by all objects (the background says nothing about identity).

Everything is drawn from ``numpy.random.default_rng([seed, index])``: the same seed and index give
the same object, and two seeds give two disjoint sets (train and held-back evaluation objects).
"""
import os
from dataclasses import dataclass
from typing import List

import cv2
import numpy as np

LIGHT = np.array([0.45, -0.55, -0.70]) / np.linalg.norm([0.45, -0.55, -0.70])  # towards the viewer (-z)
BACKGROUND = 118


@dataclass
class Face:
    verts: np.ndarray  # [n, 3] object coordinates, counter-clockwise seen from outside
    color: np.ndarray  # [3] BGR 0-255
    color2: np.ndarray  # [3] second pattern colour
    pattern: str  # stripes | checker | plain
    freq: float  # pattern cycles per unit length
    angle: float  # pattern orientation in the face plane


@dataclass
class TurntableObject:
    faces: List[Face]
    axis: np.ndarray  # rotation axis (unit), camera coordinates
    start: np.ndarray  # [3, 3] initial orientation
    kind: str


def _rot(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation matrix."""
    a = axis / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def _random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _normal(verts: np.ndarray) -> np.ndarray:
    """Newell's normal (right for non-convex polygons too, e.g. a star's top face), not unit."""
    a, b = verts, np.roll(verts, -1, axis=0)
    return np.array([np.sum((a[:, 1] - b[:, 1]) * (a[:, 2] + b[:, 2])),
                     np.sum((a[:, 2] - b[:, 2]) * (a[:, 0] + b[:, 0])),
                     np.sum((a[:, 0] - b[:, 0]) * (a[:, 1] + b[:, 1]))])


def _outward(verts: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """The face's vertices ordered so that its normal points away from ``centre``."""
    return verts if np.dot(_normal(verts), verts.mean(0) - centre) >= 0 else verts[::-1]


def _polyhedron(rng) -> List[np.ndarray]:
    from scipy.spatial import ConvexHull

    pts = rng.normal(size=(int(rng.integers(7, 15)), 3))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    pts *= rng.uniform(0.55, 1.0, size=3)  # an ellipsoid, not a ball
    hull = ConvexHull(pts)
    c = pts.mean(0)
    return [_outward(pts[s], c) for s in hull.simplices]


def _extrusion(rng) -> List[np.ndarray]:
    n = int(rng.integers(3, 8))
    ang = np.sort(rng.uniform(0, 2 * np.pi, n)) if rng.random() < 0.5 else np.linspace(0, 2 * np.pi, n, endpoint=False)
    outer = rng.uniform(0.7, 1.0, n)
    if rng.random() < 0.6:  # a star: inner vertices between the outer ones
        mid = ang + np.pi / n
        ang = np.stack([ang, mid], 1).ravel()
        outer = np.stack([outer, rng.uniform(0.3, 0.55, n)], 1).ravel()
    xy = np.stack([np.cos(ang) * outer, np.sin(ang) * outer], 1)
    h = rng.uniform(0.25, 0.7)
    top = np.concatenate([xy, np.full((len(xy), 1), h)], 1)
    bottom = np.concatenate([xy, np.full((len(xy), 1), -h)], 1)
    faces = [top, bottom[::-1]]
    for i in range(len(xy)):
        j = (i + 1) % len(xy)
        faces.append(np.stack([bottom[i], bottom[j], top[j], top[i]]))
    return faces


def make_object(seed: int, index: int) -> TurntableObject:
    """Object ``index`` of the set drawn from ``seed``."""
    rng = np.random.default_rng([int(seed), int(index)])
    kind = "polyhedron" if rng.random() < 0.5 else "extrusion"
    polys = _polyhedron(rng) if kind == "polyhedron" else _extrusion(rng)
    palette = rng.integers(20, 236, size=(int(rng.integers(2, 4)), 3)).astype(np.float64)
    faces = []
    for v in polys:
        c1, c2 = palette[rng.integers(len(palette))], palette[rng.integers(len(palette))]
        faces.append(Face(verts=v, color=c1, color2=c2 if rng.random() < 0.7 else 255 - c1,
                          pattern=str(rng.choice(["stripes", "checker", "plain"], p=[0.45, 0.35, 0.2])),
                          freq=float(rng.uniform(1.5, 5.0)), angle=float(rng.uniform(0, np.pi))))
    tilt = rng.uniform(-0.5, 0.5, size=2)  # up to ~27 degrees off vertical
    axis = np.array([tilt[0], 1.0, tilt[1]])
    return TurntableObject(faces=faces, axis=axis / np.linalg.norm(axis), start=_random_rotation(rng), kind=kind)


def _face_basis(verts: np.ndarray):
    n = _normal(verts)
    n /= np.linalg.norm(n)
    e1 = verts[1] - verts[0]
    e1 /= np.linalg.norm(e1)
    return n, e1, np.cross(n, e1)


def render(obj: TurntableObject, angle: float, size: int = 64, supersample: int = 2,
           noise_seed=None) -> np.ndarray:
    """The object turned by ``angle`` (radians) about its axis: [size, size, 3] uint8 BGR."""
    s = size * supersample
    rot = _rot(obj.axis, angle) @ obj.start
    img = np.full((s, s, 3), BACKGROUND, np.float64)
    scale = 0.42 * s  # the object (radius <= 1) fills most of the frame
    drawn = []
    for f in obj.faces:
        v = f.verts @ rot.T  # camera coordinates; the viewer looks along +z
        n = _normal(v)
        if n[2] >= -1e-9:  # back-facing (or edge-on)
            continue
        drawn.append((v[:, 2].mean(), f, v, n / np.linalg.norm(n)))
    for _, f, v, n in sorted(drawn, key=lambda d: -d[0]):  # far to near (painter's order)
        pts = np.round(np.stack([v[:, 0] * scale + s / 2, v[:, 1] * scale + s / 2], 1) * 16).astype(np.int32)
        mask = np.zeros((s, s), np.uint8)
        cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=4)
        ys, xs = np.nonzero(mask)
        if not len(ys):
            continue
        # the surface point under each pixel, back in object coordinates: the pattern sticks to the face
        px, py = (xs - s / 2) / scale, (ys - s / 2) / scale
        pz = v[0, 2] - (n[0] * (px - v[0, 0]) + n[1] * (py - v[0, 1])) / n[2]
        p_obj = np.stack([px, py, pz], 1) @ rot  # rot is orthonormal: inverse = transpose
        _, e1, e2 = _face_basis(f.verts)
        u, w = p_obj @ e1, p_obj @ e2
        ca, sa = np.cos(f.angle), np.sin(f.angle)
        a, b = (u * ca + w * sa) * f.freq, (-u * sa + w * ca) * f.freq
        if f.pattern == "stripes":
            t = (np.sin(2 * np.pi * a) > 0).astype(np.float64)
        elif f.pattern == "checker":
            t = ((np.floor(a) + np.floor(b)) % 2).astype(np.float64)
        else:
            t = np.zeros_like(a)
        col = f.color[None] * (1 - t[:, None]) + f.color2[None] * t[:, None]
        shade = 0.5 + 0.7 * max(0.0, float(-np.dot(n, LIGHT)))
        img[ys, xs] = col * shade
    out = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA) if supersample > 1 else img
    if noise_seed is not None:
        out = out + np.random.default_rng(noise_seed).normal(0, 3.0, out.shape)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def object_name(seed: int, index: int) -> str:
    return f"s{seed}_obj{index:05d}"


def write_turntable(out: str, objects: int, poses: int = 36, size: int = 64, seed: int = 0,
                    start: int = 0, ext: str = "png") -> List[str]:
    """Objects ``start .. start+objects-1`` of ``seed``: ``out/<object>/<pose:03d>.<ext>``, pose p at
    p * 360 / poses degrees. An object folder already complete is kept (resumable). Returns the folders."""
    if objects < 1 or poses < 2 or size < 8:
        raise ValueError(f"turntable needs objects >= 1, poses >= 2, size >= 8 (got {objects}, {poses}, {size})")
    from vissl_ext.utils.atomic_io import atomic_open

    os.makedirs(out, exist_ok=True)
    folders = []
    for i in range(start, start + objects):
        d = os.path.join(out, object_name(seed, i))
        folders.append(d)
        names = [f"{p:03d}.{ext}" for p in range(poses)]
        if os.path.isdir(d) and all(os.path.isfile(os.path.join(d, n)) for n in names):
            continue
        os.makedirs(d, exist_ok=True)
        obj = make_object(seed, i)
        for p, name in enumerate(names):
            frame = render(obj, 2 * np.pi * p / poses, size, noise_seed=[seed, i, p])
            ok, buf = cv2.imencode(f".{ext}", frame)
            with atomic_open(os.path.join(d, name), "wb") as f:
                f.write(buf.tobytes())
    return folders
