"""Tests for the meta-learning helpers: episodes (neutral), PyTorch and Keras MAML/Reptile/ProtoNets."""
import numpy as np
import pytest

import xfer_helpers  # noqa: F401  (before TensorFlow: see env.preload_triton)
from xfer_helpers import episodes
from xfer_helpers.datasets import sample_sinusoid_tasks

torch = pytest.importorskip("torch")
from xfer_helpers.pytorch import meta as tmeta  # noqa: E402


# ------------------------------------------------------------------ episodes
def test_episode_shapes_labels_and_no_overlap():
    labels = np.repeat(np.arange(12), 7)
    images = np.arange(len(labels))  # an image's id is its position
    ep = episodes.sample_episode(images, labels, n_way=5, k_shot=2, n_query=3, seed=4)
    assert ep.support_x.shape == (10,) and ep.query_x.shape == (15,)
    assert ep.support_y.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert ep.query_y.tolist() == sorted(ep.query_y.tolist()) and set(ep.query_y) == set(range(5))
    assert not set(ep.support_x) & set(ep.query_x)
    assert len(set(ep.classes)) == 5
    for x, y in [(ep.support_x, ep.support_y), (ep.query_x, ep.query_y)]:
        assert (labels[x] == ep.classes[y]).all()  # label j really is class classes[j]


def test_episodes_are_reproducible_and_vary():
    labels = np.repeat(np.arange(20), 5)
    a = episodes.sample_episodes(np.arange(100), labels, 3, n_way=5, k_shot=1, n_query=2, seed=1)
    b = episodes.sample_episodes(np.arange(100), labels, 3, n_way=5, k_shot=1, n_query=2, seed=1)
    assert all((x.support_x == y.support_x).all() for x, y in zip(a, b))
    assert not (a[0].support_x == a[1].support_x).all()


def test_episode_bad_input_raises():
    labels = np.repeat(np.arange(3), 4)
    with pytest.raises(ValueError, match="needs 5 classes"):
        episodes.sample_episode(np.arange(12), labels, n_way=5, k_shot=1, n_query=1)
    with pytest.raises(ValueError, match="k_shot must be"):
        episodes.sample_episode(np.arange(12), labels, n_way=2, k_shot=0)
    with pytest.raises(ValueError, match="one label per image"):
        episodes.sample_episode(np.arange(11), labels, n_way=2, k_shot=1, n_query=1)


def test_confidence_interval_matches_formula():
    values = np.random.default_rng(0).uniform(size=50)
    mean, half = episodes.mean_confidence_interval(values)
    assert mean == pytest.approx(values.mean())
    assert half == pytest.approx(1.959964 * values.std(ddof=1) / np.sqrt(50), rel=1e-5)
    with pytest.raises(ValueError):
        episodes.mean_confidence_interval([0.5])


def test_feature_accuracies():
    support, support_y = np.array([[0.0, 0], [0, 2], [10, 0]]), np.array([0, 0, 1])
    query, query_y = np.array([[0.0, 1], [6, 0], [4, 0]]), np.array([0, 1, 1])
    # prototype of class 0 is (0, 1): (4, 0) is 17 from it and 36 from (10, 0)
    assert episodes.nearest_prototype_accuracy(support, support_y, query, query_y) == pytest.approx(2 / 3)
    features = np.repeat(np.eye(8), 5, axis=0) + np.random.default_rng(0).normal(0, 0.05, (40, 8))
    accs = episodes.episode_accuracies(features, np.repeat(np.arange(8), 5), 20, 4, 1, 3,
                                       method="linear probe")
    assert accs.shape == (20,) and accs.min() == 1.0
    with pytest.raises(KeyError, match="Valid methods"):
        episodes.episode_accuracies(features, np.repeat(np.arange(8), 5), 2, method="knn")


# ------------------------------------------------------------ PyTorch parts
def test_torch_prototypical_loss_uses_squared_distance():
    support = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    query = torch.tensor([[1.0, 1.0]])
    protos = tmeta.prototypes(support, torch.tensor([0, 0, 1]), 2)
    assert torch.allclose(protos, torch.tensor([[1.0, 0.0], [0.0, 3.0]]))
    loss, acc = tmeta.prototypical_loss(support, torch.tensor([0, 0, 1]), query, torch.tensor([0]), 2)
    logits = -torch.tensor([[1.0, 5.0]])  # squared distances 1 and 1 + 4
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, torch.tensor([0])).item())
    assert acc.item() == 1.0


def _torch_model(seed=0):
    torch.manual_seed(seed)
    return tmeta.sinusoid_mlp()


def test_torch_inner_step_is_one_sgd_step():
    model = _torch_model()
    tasks = sample_sinusoid_tasks(1, 5, 5, seed=0)
    xs, ys = (torch.as_tensor(a[0]) for a in (tasks.x_support, tasks.y_support))
    fast = tmeta.inner_step(model, dict(model.named_parameters()), xs, ys, lr=0.1)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.nn.functional.mse_loss(model(xs), ys).backward()
    sgd.step()
    for name, p in model.named_parameters():
        assert torch.allclose(fast[name], p, atol=1e-6), name


def test_torch_batched_tasks_match_one_by_one():
    model = _torch_model()
    tasks = sample_sinusoid_tasks(3, 5, 5, seed=1)
    xs, ys, xq, yq = tmeta.task_tensors(tasks)
    params = dict(model.named_parameters())
    together = tmeta.maml_loss(model, tmeta.per_task(params, 3), xs, ys, xq, yq, 0.01, steps=2)
    alone = [tmeta.maml_loss(model, params, xs[i], ys[i], xq[i], yq[i], 0.01, steps=2) for i in range(3)]
    assert together.item() == pytest.approx(torch.stack(alone).mean().item(), rel=1e-5)


def _meta_gradients(first_order, steps=2):
    model = _torch_model()
    tasks = sample_sinusoid_tasks(2, 5, 5, seed=2)
    params = dict(model.named_parameters())
    loss = tmeta.maml_loss(model, tmeta.per_task(params, 2), *tmeta.task_tensors(tasks), 0.05,
                           steps, first_order)
    return model, tasks, torch.autograd.grad(loss, list(params.values()))


def test_torch_first_order_gradient_is_query_gradient_at_adapted_weights():
    model, tasks, grads = _meta_gradients(first_order=True)
    xs, ys, xq, yq = tmeta.task_tensors(tasks)
    expected = [torch.zeros_like(p) for p in model.parameters()]
    for i in range(2):
        fast = {k: v.detach().requires_grad_() for k, v in tmeta.adapt(
            model, dict(model.named_parameters()), xs[i], ys[i], 0.05, 2).items()}
        loss = tmeta.task_mse(tmeta.forward(model, fast, xq[i]), yq[i]) / 2
        for e, g in zip(expected, torch.autograd.grad(loss, list(fast.values()))):
            e += g
    assert all(torch.allclose(g, e, atol=1e-6) for g, e in zip(grads, expected))
    _, _, second = _meta_gradients(first_order=False)
    assert max((a - b).abs().max().item() for a, b in zip(grads, second)) > 1e-4


def test_torch_reptile_moves_towards_adapted_weights():
    model = _torch_model()
    tasks = sample_sinusoid_tasks(2, 5, 5, seed=3)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    tmeta.reptile_step(model, tasks, inner_lr=0.02, inner_steps=3, outer_lr=1.0)
    xs, ys, xq, yq = tmeta.task_tensors(tasks)
    x, y = torch.cat([xs, xq], 1), torch.cat([ys, yq], 1)
    mean = {k: torch.zeros_like(v) for k, v in before.items()}
    for i in range(2):  # plain SGD on a copy, task by task
        copy = _torch_model()
        copy.load_state_dict(before)
        sgd = torch.optim.SGD(copy.parameters(), lr=0.02)
        for _ in range(3):
            sgd.zero_grad()
            torch.nn.functional.mse_loss(copy(x[i]), y[i]).backward()
            sgd.step()
        for k, v in copy.named_parameters():
            mean[k] += v.detach() / 2
    for k, v in model.named_parameters():  # outer_lr = 1: exactly the mean
        assert torch.allclose(v, mean[k], atol=1e-6), k


def test_torch_maml_class_and_saved_bytes():
    model = _torch_model()
    maml = tmeta.MAML(model, lr=0.05)
    learner = maml.clone()
    x = torch.linspace(-1, 1, 5)[:, None]
    learner.adapt(torch.nn.functional.mse_loss(learner(x), x))
    expected = tmeta.inner_step(model, dict(model.named_parameters()), x, x, 0.05)
    assert all(torch.allclose(learner.params[k], expected[k]) for k in expected)
    tasks = sample_sinusoid_tasks(4, 5, 5, seed=4)
    params = tmeta.per_task(dict(model.named_parameters()), 4)

    def held(steps, first_order):
        return tmeta.saved_tensor_bytes(lambda: tmeta.maml_loss(
            model, params, *tmeta.task_tensors(tasks), 0.01, steps, first_order))[1]

    # second order holds every inner step's graph; first order only the query pass
    assert held(3, False) > held(1, False) > held(1, True) > 0
    assert held(3, True) == held(1, True)


def test_torch_adaptation_curve_starts_at_unadapted_loss():
    model = _torch_model()
    tasks = sample_sinusoid_tasks(3, 5, 10, seed=5)
    curve = tmeta.adaptation_curve(model, tasks, lr=0.01, steps=3)
    with torch.no_grad():
        start = torch.nn.functional.mse_loss(model(torch.as_tensor(tasks.x_query)),
                                             torch.as_tensor(tasks.y_query)).item()
    assert curve.shape == (4,) and curve[0] == pytest.approx(start, rel=1e-5)
    assert curve[3] != pytest.approx(curve[0])


# --------------------------------------------------------------- Keras parts
@pytest.fixture(scope="module")
def kmeta():
    from xfer_helpers.keras import meta
    return meta


def _twins(kmeta):
    model = _torch_model(seed=7)
    arrays = [v.detach().numpy() for v in model.state_dict().values()]
    return model, kmeta.weights_from_torch(kmeta.sinusoid_mlp(), arrays)


@pytest.mark.slow
@pytest.mark.parametrize("first_order", [False, True])
def test_keras_meta_gradient_matches_torch(kmeta, first_order):
    tf = kmeta.tf
    model, kmodel = _twins(kmeta)
    tasks = sample_sinusoid_tasks(3, 5, 5, seed=8)
    params = dict(model.named_parameters())
    loss = tmeta.maml_loss(model, tmeta.per_task(params, 3), *tmeta.task_tensors(tasks), 0.05, 2,
                           first_order)
    torch_grads = [g.numpy() for g in torch.autograd.grad(loss, list(params.values()))]
    xs, ys, xq, yq = (tf.constant(a) for a in (tasks.x_support, tasks.y_support, tasks.x_query,
                                                tasks.y_query))
    with tf.GradientTape() as tape:
        losses = [kmeta.maml_loss(kmodel, kmodel.trainable_variables, xs[i], ys[i], xq[i], yq[i],
                                  0.05, 2, first_order) for i in range(3)]
        kloss = tf.add_n(losses) / 3
    keras_grads = tape.gradient(kloss, kmodel.trainable_variables)
    assert float(kloss) == pytest.approx(loss.item(), rel=1e-5)
    for t, k in zip(torch_grads, keras_grads):
        np.testing.assert_allclose(t.T if t.ndim == 2 else t, k.numpy(), atol=1e-5)


@pytest.mark.slow
def test_keras_reptile_and_curve_match_torch(kmeta):
    model, kmodel = _twins(kmeta)
    tasks = sample_sinusoid_tasks(2, 5, 5, seed=9)
    np.testing.assert_allclose(kmeta.adaptation_curve(kmodel, tasks, 0.02, 3),
                               tmeta.adaptation_curve(model, tasks, 0.02, 3), rtol=1e-4)
    tmeta.reptile_step(model, tasks, inner_lr=0.02, inner_steps=3, outer_lr=0.5)
    kmeta.make_reptile_step(kmodel, inner_lr=0.02, inner_steps=3)(tasks, outer_lr=0.5)
    for t, k in zip(model.state_dict().values(), kmodel.get_weights()):
        t = t.numpy()
        np.testing.assert_allclose(t.T if t.ndim == 2 else t, k, atol=1e-5)


@pytest.mark.slow
def test_keras_prototypical_loss_matches_torch(kmeta):
    rng = np.random.default_rng(0)
    support, query = rng.normal(size=(6, 4)).astype(np.float32), rng.normal(size=(5, 4)).astype(np.float32)
    sy, qy = np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 2, 2, 1])
    tl, ta = tmeta.prototypical_loss(torch.as_tensor(support), torch.as_tensor(sy),
                                     torch.as_tensor(query), torch.as_tensor(qy), 3)
    kl, ka = kmeta.prototypical_loss(support, sy, query, qy, 3)
    assert float(kl) == pytest.approx(tl.item(), rel=1e-5) and float(ka) == pytest.approx(ta.item())


@pytest.mark.slow
def test_both_frameworks_offer_the_same_training_step_factories(kmeta):
    shared = {"sinusoid_mlp", "conv4_embedding", "images_to_tensor", "prototypes",
              "squared_euclidean", "prototypical_loss", "make_protonet_step", "embed",
              "make_pretrain_classifier_step", "forward", "inner_step", "adapt", "maml_loss",
              "make_maml_step", "make_reptile_step", "make_pretrain_step", "adaptation_curve",
              "adapted_predictions"}
    assert shared <= set(tmeta.__all__) and shared <= set(kmeta.__all__)
    # The PyTorch factories only bind arguments: the same update as calling the step directly.
    tasks = sample_sinusoid_tasks(3, 5, 5, seed=3)
    a, b = _torch_model(seed=5), _torch_model(seed=5)
    for make, direct in [(lambda m, o: tmeta.make_maml_step(m, o, 0.05, first_order=True)(tasks),
                          lambda m, o: tmeta.maml_step(m, o, tasks, 0.05, first_order=True)),
                         (lambda m, o: tmeta.make_reptile_step(m, 0.02, 3)(tasks, outer_lr=0.5),
                          lambda m, o: tmeta.reptile_step(m, tasks, 0.02, 3, 0.5)),
                         (lambda m, o: tmeta.make_pretrain_step(m, o)(tasks),
                          lambda m, o: tmeta.pretrain_step(m, o, tasks))]:
        assert make(a, torch.optim.SGD(a.parameters(), 0.1)) == \
            pytest.approx(direct(b, torch.optim.SGD(b.parameters(), 0.1)))
        for p, q in zip(a.parameters(), b.parameters()):
            assert torch.equal(p, q)
