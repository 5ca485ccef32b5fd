"""Weighted k-nearest-neighbour classification of features, as InstDisc (Wu et al., 2018) and
solo-learn evaluate self-supervised representations: cosine similarity, the k most similar
training features vote for their class with weight exp(similarity / temperature)."""
import torch


def knn_scores(train_feats, train_labels, test_feats, num_classes: int, k: int = 20, temperature: float = 0.07,
               chunk: int = 1024) -> torch.Tensor:
    """[N_test, num_classes] summed vote weights. Features are L2-normalised here; test rows are
    processed in chunks so memory stays O(chunk x N_train)."""
    if k < 1 or temperature <= 0:
        raise ValueError(f"kNN needs k >= 1 and temperature > 0 (got k={k}, temperature={temperature})")
    train = torch.nn.functional.normalize(torch.as_tensor(train_feats).float().flatten(1), dim=1)
    test = torch.nn.functional.normalize(torch.as_tensor(test_feats).float().flatten(1), dim=1)
    labels = torch.as_tensor(train_labels).long().to(train.device)
    if len(train) == 0 or len(labels) != len(train):
        raise ValueError(f"kNN needs as many training labels as training features (got {len(labels)} and {len(train)})")
    k = min(k, len(train))
    out = []
    for rows in test.split(chunk):
        sim, idx = (rows @ train.T).topk(k, dim=1)
        votes = torch.zeros(len(rows), num_classes, device=rows.device)
        out.append(votes.scatter_add_(1, labels[idx], (sim / temperature).exp()))
    return torch.cat(out) if out else torch.zeros(0, num_classes)


def knn_top1(train_feats, train_labels, test_feats, test_labels, k: int = 20, temperature: float = 0.07) -> float:
    """Top-1 accuracy in percent of the weighted kNN classifier."""
    train_labels, test_labels = torch.as_tensor(train_labels).long(), torch.as_tensor(test_labels).long()
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    pred = knn_scores(train_feats, train_labels, test_feats, num_classes, k, temperature).argmax(1)
    return 100.0 * (pred.cpu() == test_labels.cpu()).float().mean().item()
