"""lowmode in your own training loop: a torchvision ResNet-18, a plain DataLoader, low steps downsampled on the device.

    python examples/own_loop.py            # ~20 s on one CPU core; uses a GPU when there is one

Tiny generated data (10 classes of noisy coloured stripes, 32x32) stand in for your dataset: nothing is
downloaded. The lines between the markers are all a user writes; see README.md ("Your own loop").
"""

import torch
import torch.nn.functional as F
import torchvision
from torch.utils.data import DataLoader, TensorDataset


def make_data(n: int, seed: int) -> TensorDataset:
    """uint8 NCHW images whose class k is a stripe pattern of period k + 2 in colour k, plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    x = torch.arange(32).view(1, 1, 32)
    stripes = ((x + torch.zeros(n, 32, 1)) % (labels.view(-1, 1, 1) + 2) == 0).float()
    colour = torch.stack([(labels >> b) & 1 for b in range(3)], 1).float().view(n, 3, 1, 1) * 0.7 + 0.3
    images = stripes.unsqueeze(1) * colour * 200 + torch.rand(n, 3, 32, 32, generator=g) * 55
    return TensorDataset(images.to(torch.uint8), labels)


# ----- user code begins -----
import lowmode  # noqa: E402

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
torch.manual_seed(0)
model = torchvision.models.resnet18(num_classes=10)
report = lowmode.convert(model, bn_policy="frozen", ratio=2)  # by rule, in place; full mode unchanged
print(report.summary())
model.to(device)
optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-4)
schedule = lowmode.ModeSchedule(lowmode.ScheduleConfig(policy="bernoulli", p=0.5), seed=0)
train = DataLoader(make_data(512, seed=1), batch_size=32, shuffle=True, drop_last=True)
val = DataLoader(make_data(256, seed=2), batch_size=128)
mean, std = 0.45 * 255, 0.25 * 255


def prepare(images: torch.Tensor, mode: str) -> torch.Tensor:
    images = images.to(device, non_blocking=True)
    if mode == lowmode.LOW:  # 32x32 -> 16x16 with the filter lowmode-preprocess writes
        images = lowmode.downsample_batch(images, ratio=2, method="gaussian")
    return (images.float() - mean) / std


for epoch in range(3):
    model.train()
    for step, (images, labels) in enumerate(train):
        mode = schedule.mode(epoch, step)  # "full" or "low": a pure function of (seed, epoch, step)
        lowmode.set_mode(model, mode)
        loss = F.cross_entropy(model(prepare(images, mode)), labels.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    # Evaluation is full mode. BN running statistics saw only the full steps (bn_policy "frozen"), while
    # the weights also moved in low steps: re-estimate them from a few full-mode batches first.
    lowmode.recalibrate_bn(model, (prepare(x, lowmode.FULL) for x, _ in train), max_batches=8)
    lowmode.set_mode(model, lowmode.FULL)
    model.eval()
    with torch.no_grad():
        correct = sum((model(prepare(x, lowmode.FULL)).argmax(1).cpu() == y).sum().item() for x, y in val)
    low = sum(schedule.mode(epoch, s) == lowmode.LOW for s in range(len(train))) / len(train)
    print(f"epoch {epoch}: last loss {loss.item():.3f}, low steps {low:.0%}, val accuracy {correct / 256:.3f}")
# ----- user code ends -----
