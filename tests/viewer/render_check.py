"""Run in the viewer environment: load a nerfstudio run with nerfstudio's own ``eval_setup``, render the first
training camera at the given times (and once without times), and print JSON comparing those renders with the
Lightning task's own render of the same rays (``--ckpt``) when one is given.

    python render_check.py --config <config.yml> --times 0.2 0.8 [--ckpt <lightning checkpoint>]
"""

import argparse
import json
from pathlib import Path

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.utils.eval_utils import eval_setup

parser = argparse.ArgumentParser()
parser.add_argument("--config", required=True)
parser.add_argument("--times", type=float, nargs="+", required=True)
parser.add_argument("--ckpt", default=None)
options = parser.parse_args()

config, pipeline, checkpoint, step = eval_setup(Path(options.config), test_mode="inference")
camera = pipeline.datamanager.train_dataparser_outputs.cameras[0:1]


def at(time):
    times = None if time is None else torch.tensor([[time]])
    view = Cameras(
        camera_to_worlds=camera.camera_to_worlds,
        fx=camera.fx,
        fy=camera.fy,
        cx=camera.cx,
        cy=camera.cy,
        width=camera.width,
        height=camera.height,
        times=times,
    )
    return pipeline.model.get_outputs_for_camera(view)


renders = [at(t)["rgb"] for t in options.times]
report = {
    "step": step,
    "includes_time": bool(pipeline.datamanager.includes_time),
    "shape": list(renders[0].shape),
    "outputs": list(at(options.times[0]).keys()),
    "change_between_times": float((renders[0] - renders[-1]).abs().max()),
    "untimed_vs_default_time": float(
        (at(None)["rgb"] - at(pipeline.model.config.default_time)["rgb"]).abs().max()
    ),
}
if options.ckpt:
    from sciml.tasks.shade import ShadeTask

    task = ShadeTask.load_from_checkpoint(options.ckpt, map_location="cpu").eval()
    rays = camera.generate_rays(camera_indices=0, keep_shape=True)
    report["vs_lightning"] = [
        float((task.render_image(rays.origins, rays.directions, t)["rgb"] - render).abs().max())
        for t, render in zip(options.times, renders)
    ]
print(json.dumps(report))
