"""The fixed article split of the benchmark corpus (SQuAD v1.1 dev, 42 articles), and paragraph order.

Split by article, never by question: paragraphs of one article share vocabulary and facts. Test and validation are
fixed lists of titles (6 and 4 articles, 226 and 121 paragraphs); every other article is train (32 articles,
1,556 paragraphs). Train paragraphs are ordered by a hash of their id, so any prefix (e.g. the first 800) mixes all
train articles; test and validation keep file order.
"""

import hashlib

TEST_ARTICLES = (
    "Civil_disobedience", "European_Union_law", "Harvard_University", "Newcastle_upon_Tyne", "Scottish_Parliament",
    "University_of_Chicago",
)
VALIDATION_ARTICLES = ("Ctenophora", "Jacksonville,_Florida", "Oxygen", "Private_school")


def article_split(title: str) -> str:
    if title in TEST_ARTICLES:
        return "test"
    if title in VALIDATION_ARTICLES:
        return "validation"
    return "train"


def split_paragraphs(squad: dict) -> dict[str, list[dict]]:
    """{split: [{"paragraph_id", "title", "context", "qas"}, ...]} in the fixed build order."""
    splits = {"train": [], "validation": [], "test": []}
    for article in squad["data"]:
        for index, paragraph in enumerate(article["paragraphs"]):
            splits[article_split(article["title"])].append({
                "paragraph_id": f"{article['title']}-{index}",
                "title": article["title"],
                "context": paragraph["context"],
                "qas": paragraph["qas"],
            })
    splits["train"].sort(key=lambda p: hashlib.sha1(p["paragraph_id"].encode()).hexdigest())
    return splits
