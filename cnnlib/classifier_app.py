"""The interactive classifier of the "Try it" page: the views and the widget callbacks.

The notebook only wires and displays; everything it shows is computed here, so that the
callbacks run (and are tested) without a browser. Three sources of images: an uploaded
file, a test image of the data set the checkpoint was trained on, and, for greyscale
models, a digit drawn with the mouse on an ipycanvas canvas. Each is classified by
:class:`cnnlib.predict.Classifier` and shown as the model's input, a bar chart of the top-5
probabilities, the Grad-CAM map (:mod:`cnnlib.explain`) and the feature maps of one layer
(:func:`cnnlib.plots.plot_image_feature_maps`). The app only loads a checkpoint; the notebook
trains one first where there is none.

A drawing is brought to MNIST's form before it is classified: LeCun et al. size-normalised
each digit to fit a 20×20 box, keeping its aspect ratio, and centred it by its centre of mass
in a 28×28 field (the MNIST page, https://yann.lecun.com/exdb/mnist/).
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from cnnlib import plots
from cnnlib.data import DataSplit, load_dataset, read_image
from cnnlib.errors import UserError
from cnnlib.explain import grad_cam, plot_grad_cam
from cnnlib.predict import Classifier, Prediction
from cnnlib.record import read_metrics

MNIST_FIELD, MNIST_BOX = 28, 20
CANVAS_SIDE, STROKE_WIDTH = 224, 22


def find_checkpoint(checkpoint: str | os.PathLike | None) -> Path | None:
    """``checkpoint`` if it exists, else the same relative path one folder up (a notebook runs
    in ``notebooks/`` under Jupyter and in the repository root under papermill), else None."""
    if not checkpoint:
        return None
    path = Path(checkpoint)
    for candidate in (path, Path("..") / path if not path.is_absolute() else path):
        if candidate.is_file():
            return candidate
    return None


def describe_checkpoint(checkpoint: str | os.PathLike) -> str:
    """A sentence on the run that wrote ``checkpoint``, from the ``metrics.json`` beside it."""
    metrics_file = Path(checkpoint).with_name("metrics.json")
    if not metrics_file.is_file():
        return f"Loaded the trained model {checkpoint}."
    record = read_metrics(metrics_file)
    metrics = record.metrics
    tested = (
        f"test accuracy {metrics.test_accuracy:.2%} on {metrics.test_images:,} test images"
        if metrics.test_accuracy is not None
        else "not tested"
    )
    return (
        f"Loaded {checkpoint}: {record.model} trained for {metrics.epochs} epoch(s) on "
        f"{metrics.train_images:,} images of {record.dataset_source}, on {metrics.device} "
        f"({metrics.device_name}); {tested}."
    )


def checkpoint_dataset(classifier: Classifier, data_root: str | None = None) -> DataSplit:
    """The data set the checkpoint was trained on, at its stored size (fitted when classified)."""
    config = classifier.record.config
    return load_dataset(config.dataset, data_root or config.data_root)


def drawing_to_image(
    strokes: list[list[tuple[float, float]]], side: int = CANVAS_SIDE, width: int = STROKE_WIDTH
) -> torch.Tensor:
    """Strokes drawn on a ``side``×``side`` canvas as a uint8 (1, 28, 28) MNIST-style digit: white
    on black, fitted into a 20×20 box and centred by its centre of mass (see the module docstring)."""
    canvas = Image.new("L", (side, side), 0)
    pen = ImageDraw.Draw(canvas)
    for stroke in strokes:
        for x, y in stroke:
            pen.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=255)
        if len(stroke) > 1:
            pen.line(stroke, fill=255, width=width)
    box = canvas.getbbox()
    if box is None:
        raise UserError("The canvas is empty: draw a digit first.")
    digit = canvas.crop(box)
    scale = MNIST_BOX / max(digit.size)
    digit = digit.resize(
        (max(1, round(digit.width * scale)), max(1, round(digit.height * scale))), Image.Resampling.LANCZOS
    )
    pixels = np.asarray(digit, dtype=np.float64)
    rows, columns = np.indices(pixels.shape)
    centre_row, centre_column = (rows * pixels).sum() / pixels.sum(), (columns * pixels).sum() / pixels.sum()
    top = int(np.clip(round(MNIST_FIELD / 2 - centre_row), 0, MNIST_FIELD - digit.height))
    left = int(np.clip(round(MNIST_FIELD / 2 - centre_column), 0, MNIST_FIELD - digit.width))
    field = Image.new("L", (MNIST_FIELD, MNIST_FIELD), 0)
    field.paste(digit, (left, top))
    return torch.from_numpy(np.array(field)).unsqueeze(0)


def explain(classifier: Classifier, prediction: Prediction, cam_layer: str | None = None) -> torch.Tensor:
    """The Grad-CAM map of the predicted class for a prediction's input."""
    image = classifier.preprocess.normalise(prediction.image.unsqueeze(0).to(classifier.device))[0]
    return grad_cam(classifier.model, image, classifier.classes.index(prediction.label), cam_layer)


def plot_classification(
    classifier: Classifier, prediction: Prediction, title: str = "", cam_layer: str | None = None
) -> Figure:
    """Three panels: the model's input, the top probabilities as bars, the Grad-CAM overlay."""
    figure, (input_axis, bars_axis, cam_axis) = plt.subplots(
        1, 3, figsize=(10, 3.2), layout="constrained", gridspec_kw={"width_ratios": [1, 1.4, 1]}
    )
    plots.show_image(input_axis, prediction.image)
    input_axis.set_title(
        f"model input {tuple(prediction.image.shape)}" + (", inverted" if prediction.inverted else ""),
        fontsize=9,
    )
    labels = [label for label, _ in prediction.top][::-1]
    values = [probability for _, probability in prediction.top][::-1]
    bars_axis.barh(labels, values, color=["tab:gray"] * (len(values) - 1) + ["tab:blue"])
    for row, value in enumerate(values):
        bars_axis.text(min(value, 0.78) + 0.02, row, f"{value:.1%}", va="center", fontsize=8)
    bars_axis.set(xlim=(0, 1), xlabel="probability", title=f"top {len(values)}: {prediction.label}")
    plot_grad_cam(
        prediction.image,
        explain(classifier, prediction, cam_layer),
        f"Grad-CAM for {prediction.label!r}",
        axis=cam_axis,
    )
    if title:
        figure.suptitle(title)
    return figure


def plot_prediction_feature_maps(
    classifier: Classifier, prediction: Prediction, layer: str | None = None, limit: int = 16
) -> Figure:
    """The feature maps of ``layer`` (default: the first convolution) for a prediction's input."""
    return plots.plot_image_feature_maps(
        classifier.model,
        prediction.image,
        classifier.preprocess,
        layer or plots.first_conv_name(classifier.model),
        prediction.label,
        limit,
    )


def figure_png(figure: Figure) -> bytes:
    """A figure as PNG bytes; the figure is closed."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=72)
    plt.close(figure)
    return buffer.getvalue()


class ClassifierApp:
    """The widgets of the classifier and their callbacks. ``widget`` is what a notebook displays;
    ``status`` (an HTML widget with the CSS class ``cnnlib-prediction``) names the last prediction."""

    def __init__(
        self,
        classifier: Classifier,
        data: DataSplit | None = None,
        *,
        feature_layer: str | None = None,
        cam_layer: str | None = None,
        seed: int = 0,
    ):
        import ipywidgets as widgets

        self.classifier, self.data = classifier, data
        self.feature_layer, self.cam_layer = feature_layer, cam_layer
        self.random = random.Random(seed)
        self.strokes: list[list[tuple[float, float]]] = []
        self.pen_down = False
        self.last: Prediction | None = None

        self.invert = widgets.Dropdown(
            options=[("auto", "auto"), ("yes", True), ("no", False)],
            value="auto",
            description="invert",
            layout={"width": "160px"},
        )
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="Upload an image")
        self.upload.observe(self.on_upload, names="value")
        self.status = widgets.HTML("Choose an image.").add_class("cnnlib-prediction")
        self.views = widgets.Image(format="png")
        self.maps = widgets.Image(format="png")
        sources = [widgets.HBox([self.upload, self.invert])]
        if data is not None:
            self.index = widgets.BoundedIntText(
                value=0, min=0, max=len(data.test_y) - 1, description="test image", layout={"width": "200px"}
            )
            show_test = widgets.Button(description="Classify test image")
            show_test.on_click(self.on_test_image)
            pick = widgets.Button(description="Random test image")
            pick.on_click(self.on_random_test_image)
            sources.append(widgets.HBox([self.index, show_test, pick]))
        self.canvas = self._canvas() if classifier.input_shape[0] == 1 else None
        if self.canvas is not None:
            classify = widgets.Button(description="Classify drawing")
            classify.on_click(self.on_classify_drawing)
            clear = widgets.Button(description="Clear")
            clear.on_click(self.on_clear)
            sources.append(widgets.HBox([self.canvas, widgets.VBox([classify, clear])]))
        self.widget = widgets.VBox([*sources, self.status, self.views, self.maps])

    def _canvas(self):
        try:
            from ipycanvas import Canvas
        except ImportError:  # the drawing pad is optional: pip install ipycanvas
            return None
        canvas = Canvas(width=CANVAS_SIDE, height=CANVAS_SIDE, layout={"width": f"{CANVAS_SIDE}px"})
        canvas.on_mouse_down(self.on_mouse_down)
        canvas.on_mouse_move(self.on_mouse_move)
        canvas.on_mouse_up(self.on_mouse_up)
        self._clear_canvas(canvas)
        return canvas

    @staticmethod
    def _clear_canvas(canvas) -> None:
        canvas.fill_style = "black"
        canvas.fill_rect(0, 0, CANVAS_SIDE, CANVAS_SIDE)
        canvas.stroke_style = canvas.fill_style = "white"
        canvas.line_width, canvas.line_cap, canvas.line_join = STROKE_WIDTH, "round", "round"

    # ------------------------------------------------------------------ showing a prediction

    def show(self, image: torch.Tensor, source: str) -> Prediction | None:
        """Classify a uint8 (C, H, W) image and update the status and the figures."""
        try:
            prediction = self.classifier.predict(image, top_k=5, invert=self.invert.value)
        except UserError as error:
            self.report(str(error))
            return None
        views = figure_png(plot_classification(self.classifier, prediction, cam_layer=self.cam_layer))
        maps = figure_png(plot_prediction_feature_maps(self.classifier, prediction, self.feature_layer))
        self.views.value, self.maps.value, self.last = views, maps, prediction
        label, probability = prediction.top[0]
        # The status changes last: once it names this image, the figures show it too.
        self.status.value = f"<b>{label}</b> ({probability:.1%}) for {source}" + (
            " (inverted: dark on light)" if prediction.inverted else ""
        )
        return prediction

    def report(self, message: str) -> None:
        """Show a user's mistake (one sentence) in place of the prediction."""
        self.status.value = f"<span style='color: #b00'>{message}</span>"

    # ------------------------------------------------------------------ callbacks

    def on_upload(self, change: dict) -> None:
        """FileUpload's value changed: classify the uploaded file."""
        files = change["new"]
        if not files:
            return
        upload = files[0]
        try:
            image = read_image(io.BytesIO(bytes(upload["content"])), self.classifier.input_shape[0])
        except UserError:
            self.report(f"{upload['name']} is not an image PIL can read: upload a PNG or JPEG file.")
            return
        self.show(image, f"the upload {upload['name']}")

    def on_test_image(self, button: object = None) -> None:
        """Classify the test image whose index is in the box."""
        index = self.index.value
        truth = self.data.classes[self.data.test_y[index]]
        self.show(self.data.test_x[index], f"test image {index} (true class {truth})")

    def on_random_test_image(self, button: object = None) -> None:
        """Pick a random test image and classify it."""
        self.index.value = self.random.randrange(len(self.data.test_y))
        self.on_test_image()

    def on_mouse_down(self, x: float, y: float) -> None:
        """Start a stroke."""
        self.strokes.append([(x, y)])
        self.pen_down = True
        self.canvas.fill_circle(x, y, STROKE_WIDTH / 2)

    def on_mouse_move(self, x: float, y: float) -> None:
        """Continue the stroke while the button is down."""
        if self.pen_down:
            x0, y0 = self.strokes[-1][-1]
            self.strokes[-1].append((x, y))
            self.canvas.stroke_line(x0, y0, x, y)

    def on_mouse_up(self, x: float, y: float) -> None:
        """End the stroke."""
        self.pen_down = False

    def on_classify_drawing(self, button: object = None) -> None:
        """Classify what is drawn on the canvas."""
        try:
            image = drawing_to_image(self.strokes)
        except UserError as error:
            self.report(str(error))
            return
        self.show(image, "your drawing")

    def on_clear(self, button: object = None) -> None:
        """Empty the canvas."""
        self.strokes, self.pen_down = [], False
        self._clear_canvas(self.canvas)
