"""Tests of monitor.extract on fixture pages written for ipr-monitor (fixtures/extract/).

Each fixture's first comment says what it exercises and what is expected; the expected
texts below are written out in full so any change in what readers get shows up here.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import json
import random
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.extract import Article, extract
from monitor.extract_memory import SiteBoilerplate

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures" / "extract"
BENCHMARK = ROOT.parent / "shared" / "data" / "extraction-dev"

SEED_URL = "https://ipnews.example.com/2021/11/china-ipr-collaboration"
SEED_TITLE = (
    "China plans to improve international collaboration in the field of intellectual "
    "property rights"
)
SEED_TEXT = "\n\n".join(
    [
        "During the 14th five-year plan period, China intends to open its intellectual "
        "property sector further and to deepen international cooperation on intellectual "
        "property rights, the national IP administration said on Monday.",
        "A deputy head of the administration said the authorities had drawn up three measures "
        "meant to break new ground in global cooperation on intellectual property.",
        "First, China will take an active part in global IP governance, help improve "
        "international rules, and support multilateral and bilateral negotiations on "
        "intellectual property linked to trade.",
        "Second, it will strengthen cooperation mechanisms with countries along the Belt and "
        "Road and with regional organisations, and help developing countries build their IP "
        "capacity.",
        "Third, it will make it easier for Chinese applicants to obtain rights abroad, expand "
        "cooperation on patent examination, and build an early-warning system for overseas IP "
        "disputes.",
        "In September the country published a strategy for intellectual property development "
        "running to 2035, which calls for stronger protection and higher public satisfaction "
        "by 2025.",
    ]
)
INLINE_TEXT = "\n\n".join(
    [
        "Member states of the World Intellectual Property Organization have agreed the text of "
        "a treaty that simplifies the procedures for registering industrial designs in many "
        "countries at once.",
        "The treaty caps the formal requirements an office may impose on applicants, allows a "
        "grace period after first disclosure, and lets applicants file a single set of "
        "drawings.",
        "Delegations said the agreement ends almost two decades of negotiation, which had "
        "stalled over technical assistance for developing countries and disclosure "
        "requirements.",
        "The treaty will enter into force three months after fifteen eligible parties have "
        "deposited their instruments of ratification or accession.",
    ]
)
CHINESE_TEXT = "\n\n".join(
    [
        "国家知识产权局近日印发专项行动方案，提出到二〇二五年推动一批高价值专利实现产业化，"
        "加快创新成果向现实生产力转化。",
        "方案要求高校和科研机构梳理存量专利，建立专利转化运用台账，"
        "并鼓励中小企业通过许可、转让等方式获得专利技术。",
        "有关负责人表示，将加强知识产权保护与运用的衔接，完善专利开放许可制度，"
        "为企业提供更加便利的服务。",
    ]
)
# Words that only page chrome uses on these fixtures: none may reach Article.text.
CHROME = re.compile(
    r"share|whatsapp|cookie|related|read more|most read|copyright|about us|close|"
    r"facebook|twitter|patents\b|分享|首页",
    re.IGNORECASE,
)


def page(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_every_fixture_says_what_it_exercises_and_expects() -> None:
    for path in FIXTURES.iterdir():
        head = path.read_text(encoding="utf-8")[:600]
        assert "Description:" in head and "Expect:" in head, path.name


def test_seed_like_page_gives_the_article_and_nothing_else() -> None:
    article = extract(page("seed_like.html"), SEED_URL)
    assert article.title == SEED_TITLE
    assert article.text == SEED_TEXT
    assert article.reason is None
    assert article.published == datetime(2021, 11, 2, 8, 15, tzinfo=timezone(timedelta(hours=8)))
    assert article.authors == ["Li Wen"]
    assert article.language == "en"
    assert article.canonical_url == SEED_URL
    assert article.description is not None and article.description.startswith("NIPA outlines")


def test_chrome_inside_the_content_block_is_removed_line_by_line() -> None:
    article = extract(page("seed_inline_chrome.html"))
    assert article.title == "WIPO members agree text of design law treaty"
    assert article.text == INLINE_TEXT
    assert article.published is None  # only linked stories carry dates here


@pytest.mark.parametrize("name", ["seed_like.html", "seed_inline_chrome.html", "chinese.html"])
def test_no_share_cookie_or_related_line_survives(name: str) -> None:
    text = extract(page(name)).text
    assert text
    for line in text.splitlines():
        assert not CHROME.search(line), line
    title = extract(page(name)).title
    assert text.count(title) == 0, "the headline is Article.title, not a paragraph"


def test_paragraphs_are_separated_by_blank_lines() -> None:
    text = extract(page("seed_like.html")).text
    paragraphs = text.split("\n\n")
    assert len(paragraphs) == 6
    assert all(p and p == p.strip() and "\n" not in p for p in paragraphs)


def test_date_from_meta_tag_keeps_its_time_zone() -> None:
    article = extract(page("date_meta.html"))
    assert article.published == datetime(2024, 3, 5, 9, 30, tzinfo=timezone(timedelta(hours=8)))
    assert article.published.utcoffset() == timedelta(hours=8)


def test_date_and_authors_from_json_ld() -> None:
    article = extract(page("date_jsonld.html"))
    assert article.published == datetime(2023, 11, 20, 14, 0, tzinfo=UTC)
    assert article.authors == ["Maria Keller", "Tom Baker"]
    assert article.title == "EU and China extend geographical indications list"


def test_date_from_visible_text_only() -> None:
    article = extract(page("date_text.html"))
    assert article.published == datetime(2024, 1, 12, tzinfo=UTC)


def test_date_from_url_only() -> None:
    url = "https://news.example.org/2022/06/15/customs-seizures-rise"
    assert extract(page("date_url.html"), url).published == datetime(2022, 6, 15, tzinfo=UTC)
    assert extract(page("date_url.html")).published is None


def test_chinese_page() -> None:
    article = extract(page("chinese.html"))
    assert article.language == "zh"
    assert article.title == "国家知识产权局发布专利转化运用专项行动方案"
    assert article.text == CHINESE_TEXT


def test_language_follows_the_text_not_the_declaration() -> None:
    html = page("chinese.html").replace(b'lang="zh-CN"', b'lang="en"')
    assert extract(html).language == "zh"
    assert extract(page("date_meta.html")).language == "en"


@pytest.mark.parametrize(
    ("html", "reason"),
    [
        (b"", "empty input"),
        ("", "empty input"),
        (b"   \n\t ", "empty input"),
        (b"\x89PNG\r\n\x1a\n" + random.Random(4).randbytes(4000), "not HTML"),
        (page("not_html.txt"), "not HTML"),
        (b'{"title": "json, not a page"}', "not HTML"),
        (b"<html><body>" + b"<p>filler text for a huge page</p>" * 330_000, "page too large"),
        (b"<html><body><nav><a href='/'>Home</a></nav></body></html>", "no article found"),
        (
            b"<html><body><div>"
            + b"".join(
                b"<a href='/%d'>Story number %d about patents</a> " % (n, n) for n in range(300)
            )
            + b"</div></body></html>",
            "no article found",
        ),
    ],
)
def test_bad_input_gives_empty_text_and_a_reason(html: bytes | str, reason: str) -> None:
    article = extract(html)
    assert article.text == ""
    assert article.reason is not None and article.reason.startswith(reason)


def test_broken_markup_still_yields_the_article() -> None:
    article = extract(page("broken_markup.html"))
    assert article.title == "Trademark office clears backlog"
    assert article.text.startswith("The trademark office said on Tuesday")
    assert "Average examination times have fallen" in article.text


def test_wrong_type_is_a_reason_not_an_exception() -> None:
    article = extract(None)  # type: ignore[arg-type]
    assert article.text == "" and article.reason is not None


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.binary(max_size=3000), st.text(max_size=3000)))
def test_never_raises(html: bytes | str) -> None:
    article = extract(html)
    assert isinstance(article, Article)
    assert article.text or article.reason
    assert article.published is None or article.published.tzinfo is not None


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(["<p>", "</p>", "<div>", "</div>", "<b>", "x y z ", "&amp;"])))
def test_never_raises_on_tag_soup(parts: list[str]) -> None:
    article = extract("<html><body>" + "".join(parts))
    assert article.text or article.reason


def test_deterministic() -> None:
    first = extract(page("seed_like.html"), SEED_URL)
    assert all(extract(page("seed_like.html"), SEED_URL) == first for _ in range(3))


def test_str_and_bytes_give_the_same_article() -> None:
    raw = page("chinese.html")
    assert extract(raw.decode("utf-8")) == extract(raw)


def test_user_selector_picks_the_body() -> None:
    chosen = extract(page("seed_like.html"), selectors=".entry-content p:first-of-type")
    assert chosen.text == SEED_TEXT.split("\n\n")[0]
    assert chosen.title == SEED_TITLE  # metadata still comes from the whole page


@pytest.mark.parametrize("selector", ["#no-such-element", "p[[["])
def test_selector_that_fails_falls_back_to_automatic(selector: str) -> None:
    assert extract(page("seed_like.html"), selectors=selector).text == SEED_TEXT


def test_article_is_the_documented_contract() -> None:
    names = [f.name for f in dataclasses.fields(Article)]
    assert names == [
        "title",
        "text",
        "published",
        "authors",
        "language",
        "canonical_url",
        "description",
        "reason",
    ]


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_extract", ROOT / "bench" / "extract.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def test_benchmark_metric_follows_the_readme() -> None:
    bench = _bench_module()
    assert bench.score_page("a b c d e", "a b c d e") == bench.PageScore(1.0, 1.0)
    assert bench.score_page("", "a b c d") == bench.PageScore(None, 0.0)
    assert bench.score_page("", "") == bench.PageScore(1.0, 1.0)
    assert bench.shingles("one two") == {("one", "two"): 1}  # 1-3 tokens: one shorter shingle
    assert bench.shingles("a b c d a b c d")[("a", "b", "c", "d")] == 2  # a multiset
    half = bench.score_page("w x y z", "w x y z p q r s")  # 1 of 5 true shingles found
    assert half.precision == 1.0 and half.recall == pytest.approx(1 / 5)
    summary = bench.summarize([bench.PageScore(None, 0.0), bench.PageScore(1.0, 1.0)], [1.0, 3.0])
    assert summary.precision == 1.0 and summary.recall == 0.5  # empty left out of precision
    assert summary.f1 == pytest.approx(2 / 3)


@pytest.mark.skipif(not BENCHMARK.is_dir(), reason="shared benchmark data not present")
def test_quality_on_the_shared_benchmark() -> None:
    """A regression guard on real pages (bench/extract.py measures all of them, and time)."""
    bench = _bench_module()
    truth = json.loads((BENCHMARK / "ground-truth.json").read_text(encoding="utf-8"))
    scores = []
    for page_id, expected in sorted(truth.items())[::4]:  # a quarter keeps the test quick
        html = gzip.decompress((BENCHMARK / "html" / f"{page_id}.html.gz").read_bytes())
        scores.append(
            bench.score_page(extract(html, expected["url"]).text, expected["articleBody"])
        )
    assert bench.summarize(scores, [0.0]).f1 >= 0.965  # 0.977 when written; trafilatura: 0.925


ABOUT = (
    "About Lumen Patent Partners: Lumen is an intellectual property firm with offices in "
    "Munich, Shanghai and Boston, advising clients on patents, trademarks and disputes."
)


def press_release(number: int) -> str:
    """A page of one site: its own two paragraphs, then the site's closing paragraph."""
    return (
        f"<html><head><title>Release {number}</title></head><body><article>"
        f"<h1>Release {number}</h1>"
        f"<p>Release {number} says the firm advised client number {number} on a licensing "
        f"deal covering {number * 7} patent families in the mobile communications field.</p>"
        f"<p>The agreement, the firm said, settles litigation in {number + 2} countries and "
        f"includes a cross-licence running until {2030 + number}.</p>"
        f"<p>{ABOUT}</p></article></body></html>"
    )


def test_site_boilerplate_memory_learns_a_sites_closing_paragraph() -> None:
    memory = SiteBoilerplate(min_pages=3)
    urls = [f"https://www.lumen.example/news/{n}" for n in range(5)]
    texts = [extract(press_release(n), url, boilerplate=memory).text for n, url in enumerate(urls)]
    assert all(ABOUT in text for text in texts[:3])  # not yet seen on three other pages
    assert all(ABOUT not in text for text in texts[3:])
    assert texts[4].startswith("Release 4 says the firm advised client number 4")
    # Another site is not affected by what this one repeats.
    other = extract(press_release(9), "https://other.example/9", boilerplate=memory)
    assert ABOUT in other.text


def test_site_boilerplate_memory_is_explicit_state() -> None:
    memory = SiteBoilerplate(min_pages=2)
    url = "https://lumen.example/news/1"
    for _ in range(4):  # fetching one page again does not make its lines chrome
        assert ABOUT in extract(press_release(1), url, boilerplate=memory).text
    assert extract(press_release(1), url) == extract(
        press_release(1), url, boilerplate=SiteBoilerplate()
    )
    for n in (2, 3):
        extract(press_release(n), f"https://lumen.example/news/{n}", boilerplate=memory)
    restored = SiteBoilerplate.from_dict(json.loads(json.dumps(memory.to_dict())))
    later = extract(press_release(4), "https://lumen.example/news/4", boilerplate=restored)
    assert ABOUT not in later.text and later.text


def test_legacy_encodings_are_decoded() -> None:
    gbk = page("chinese.html").decode("utf-8").replace('charset="utf-8"', 'charset="gb2312"')
    article = extract(gbk.encode("gb18030"))
    assert article.text == CHINESE_TEXT and article.language == "zh"
    latin = page("seed_like.html").decode("utf-8").replace("Monday.", "Monday – “at last”.")
    latin = latin.replace('charset="utf-8"', 'charset="windows-1252"')
    text = extract(latin.encode("cp1252"), SEED_URL).text
    assert text.split("\n\n")[0].endswith("said on Monday – “at last”.")


def test_markup_after_a_long_leading_comment_is_still_html() -> None:
    padded = b"<!-- " + b"generated by a CMS " * 400 + b"-->\n" + page("date_meta.html")
    assert extract(padded).title == "CNIPA issues guidelines on patent pools"


def test_text_a_reader_never_sees_is_left_out() -> None:
    hidden = (
        "<html><body><article><h1>Court rules on standard-essential patents</h1>"
        "<p>The court said Judge <span class='rollover-people'>"
        "<a class='rollover-link' href='/people/weber'>Anna Weber</a>"
        "<span class='rollover-block'>Anna Weber profile: twelve years on the bench</span>"
        "</span> wrote the opinion, which sets a global FRAND rate for the portfolio.</p>"
        "<p>Licensees must now pay the rate set by the court or face an injunction"
        "<span class='sr-only'> (opens in a new window)</span>, the ruling says.</p>"
        "<p hidden>Subscriber-only summary that the page does not show.</p>"
        "</article></body></html>"
    )
    assert extract(hidden).text == (
        "The court said Judge Anna Weber wrote the opinion, which sets a global FRAND rate for "
        "the portfolio.\n\nLicensees must now pay the rate set by the court or face an "
        "injunction, the ruling says."
    )


@pytest.mark.parametrize(
    "sentence",
    [
        "Copyright owners will be able to claim statutory damages under the amended law.",
        "Share prices of the two generic makers fell after the ruling.",
        "Also on Monday, the patent office published its annual report.",
        "By continuing the talks, both sides hope to settle the dispute.",
        "Reporting by Reuters last week revealed the terms of the settlement.",
        "Published in 2019, the guidelines set out how examiners treat AI inventions.",
        "Sponsored by the ministry, the programme funds patent pools.",
        "Email exchanges show that the licensor knew about the prior art.",
        "Like many inventors, she filed first in her home country.",
        "分享经济平台的知识产权保护问题引起关注。",
        "November 19, 2019 was the day the court heard the appeal.",
    ],
)
def test_article_sentences_that_start_like_chrome_survive(sentence: str) -> None:
    page_html = (
        "<html><body><article><h1>IP roundup</h1>"
        "<p>The week brought several decisions on intellectual property in Asia and Europe.</p>"
        f"<p>{sentence}</p>"
        "<p>Observers expect further guidance from the courts before the end of the year.</p>"
        "</article></body></html>"
    )
    assert sentence in extract(page_html).text.split("\n\n")


def test_threads_get_the_same_articles() -> None:
    names = ["seed_like.html", "chinese.html", "date_jsonld.html", "broken_markup.html"] * 3
    expected = [extract(page(name)) for name in names]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(lambda name: extract(page(name)), names)) == expected


def test_description_falls_back_to_the_lead_paragraph() -> None:
    assert extract(page("date_text.html")).description == (
        "The Supreme People's Court has issued an interpretation that sets out how courts should "
        "calculate damages when trade secrets are misappropriated by former employees."
    )
    long_lead = "<html><body><article><p>" + "Patent word " * 60 + "</p></article></body></html>"
    description = extract(long_lead).description
    assert description is not None and description.endswith("…") and len(description) <= 301
    assert extract(page("seed_like.html")).description.startswith("NIPA outlines")  # declared


SHORT_CHINESE_BRIEF_TEXT = (
    "多家中超俱乐部完成中性化更名后，陆续向国家知识产权局提交新的商标注册申请，"
    "涵盖服装、饮料和网络游戏等类别。业内人士认为，俱乐部希望通过商标授权和周边商品开发增加收入。"
)
SHORT_CHINESE_BRIEF = (
    '<!DOCTYPE html><html lang="zh"><head><meta charset="utf-8">'
    "<title>中超俱乐部更名后注册新商标 | 法律博客</title></head>"
    '<body><header><a href="/">法律博客</a></header><main><article>'
    '<h1>中超俱乐部更名后注册新商标</h1><div class="byline">2025-03-03</div>'
    f'<div class="entry-content"><p>{SHORT_CHINESE_BRIEF_TEXT}</p></div>'
    '<div class="share">Subscribe to our newsletter</div>'
    "</article></main><footer><p>© 2025 法律博客</p></footer></body></html>"
)


def test_a_short_chinese_brief_is_not_taken_for_a_line_of_chrome() -> None:
    """83 Chinese characters are two sentences of news, not a short line: a length limit set
    on English text must weigh them as such, even when a newsletter prompt shares the line."""
    article = extract(SHORT_CHINESE_BRIEF, "https://blog.example/2025/brief.html")
    assert "陆续向国家知识产权局提交新的商标注册申请" in article.text
    assert article.reason is None
