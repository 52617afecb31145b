"""psf_shape against the truth: measured FWHM and ellipticity per filter and detector, detections, CPU time.

For each optical element and detector, a synthetic Level-2 image (galsim.roman PSF; the default
scene's star density, or 600 stars on a reduced 1024 frame) is measured by the psf_shape monitor
and compared with :func:`rdmt_core.synthetic_psf.psf_truth` (FWHM of the pixel-convolved PSF:
area above half maximum; ellipticity: galsim HSM adaptive moments). Also printed: the real sources
found against the drawn stars whose brightest pixel is above the detection threshold, the peaks
rejected as rings and spikes, and the CPU seconds of the metrics (one thread).

    .venv/bin/python benchmarks/calibrate_psf_shape.py                 # 1024 frames, 8 filters, WFI07 and WFI14
    .venv/bin/python benchmarks/calibrate_psf_shape.py --side 4096 --filters F087 F158 F213 --detectors WFI07
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from rdmt_core.geometry import Geometry, to_frame  # noqa: E402
from rdmt_core.monitors.psf_shape.metrics import psf_metrics  # noqa: E402
from rdmt_core.monitors.psf_shape.options import PsfShapeOptions  # noqa: E402
from rdmt_core.synthetic_l2 import BORDER, L2Injection, L2Scene, field_catalog, l2_arrays  # noqa: E402
from rdmt_core.synthetic_psf import GALSIM_BANDS, PHASES, psf_tables, psf_truth  # noqa: E402


def stars_above_threshold(truth, detector: int, optical_element: str, sigma: float, threshold: float, n: int) -> int:
    """Drawn stars inside the image whose noise-free brightest pixel exceeds ``threshold * sigma``."""
    stamps, _ = psf_tables(detector, optical_element)
    steps = range(0, PHASES + 1, 4)
    peak_fraction = float(np.mean([stamps[i, j].max() for i in steps for j in steps]))  # over pixel phases
    inside = (truth.x >= 0) & (truth.y >= 0) & (truth.x <= n - 1) & (truth.y <= n - 1)
    return int(np.count_nonzero(inside & (truth.flux * peak_fraction > threshold * sigma)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=1024)
    parser.add_argument("--filters", nargs="+", default=list(GALSIM_BANDS))
    parser.add_argument("--detectors", nargs="+", default=["WFI07", "WFI14"])
    parser.add_argument("--ellipticity", type=float, default=0.0, help="injected PSF ellipticity (angle 30 deg)")
    args = parser.parse_args()
    n = args.side - 2 * BORDER
    density = L2Scene.star_density if args.side >= 4096 else 600 / n**2
    options = PsfShapeOptions()
    injection = L2Injection(psf_ellipticity=args.ellipticity) if args.ellipticity else None
    print(
        f"{'filter':6} {'det':5} {'FWHM':>6} {'true':>6} {'diff':>6} {'e':>6} {'true e':>6} {'diff':>6} "
        f"{'stars':>5} {'found':>5} {'drawn>5s':>8} {'rings':>6} {'CPU s':>6}"
    )
    for optical_element in args.filters:
        for detector in args.detectors:
            number = int(detector[3:])
            scene = L2Scene(star_density=density, seed=11, optical_element=optical_element)
            arrays, wcs, _, truth = l2_arrays(
                detector, field_catalog(scene, args.side, (detector,)), scene, args.side, injection=injection
            )
            geometry = Geometry(args.side, BORDER)
            data, dq = to_frame(arrays["data"], geometry, np.nan), to_frame(arrays["dq"], geometry, 0)
            del arrays
            shape = injection or L2Injection()
            true = psf_truth(number, optical_element, 1.0, shape.psf_ellipticity, shape.psf_angle_deg)
            start = time.process_time()
            result = psf_metrics(data, dq, options, {"wcs": wcs, "optical_element": optical_element})
            cpu = time.process_time() - start
            got = {m.spec.name: m.values.detector for m in result.metrics}
            detected = result.notes["detected"]
            found, rings = int(detected.split()[0]), int(detected.split("(")[1].split()[0])
            sigma = float(np.nanmedian(0.08**2 + scene.background / scene.exposure_time) ** 0.5)
            drawn = stars_above_threshold(truth, number, optical_element, sigma, options.detection_threshold, n)
            print(
                f"{optical_element:6} {detector:5} {got['psf_fwhm']:6.3f} {true.fwhm:6.3f} "
                f"{got['psf_fwhm'] / true.fwhm - 1:+6.1%} {got['psf_ellipticity']:6.3f} {true.ellipticity:6.3f} "
                f"{got['psf_ellipticity'] - true.ellipticity:+6.3f} {got['n_psf_stars']:5.0f} {found:5d} {drawn:8d} "
                f"{rings:6d} {cpu:6.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
