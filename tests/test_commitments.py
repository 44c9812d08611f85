"""The shipped commitments: ids, queries that compile, and the hits the demo depends on."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.match import compile_matcher
from monitor.query import parse_query

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "config"
SHARED = ROOT.parent / "shared"
SHARED_COMMITMENTS = SHARED / "data" / "commitments" / "commitments.json"
SEED = SHARED / "seed" / "000_916e87ab66fa5f5a.txt"
FIXTURES = ROOT / "fixtures" / "match_quality"
# The labelled sets: articles written about the commitments, and a realistic feed of IP news
# (most of it about nothing tracked here).
LABELLED_SETS = [FIXTURES, ROOT / "fixtures" / "match_feed"]

# The paragraphs of the seed article that carry the two commitments, reworded.
SEED_LIKE_TITLE = "China plans to improve international collaboration in the field of IPR"
SEED_LIKE_TEXT = """
During the 14th five-year plan period, China will open its intellectual property rights (IPR)
sector wider to improve international IPR collaboration, the IPR authorities said.

China will actively participate in global IPR governance and support multilateral and bilateral
intellectual property negotiations linked to trade. It will expand its cooperation and
consultation with the World Intellectual Property Organization (WIPO).

China will strengthen IPR collaboration with countries along the Belt and Road and help
developing countries improve their IP capability.
"""

HARD_NEGATIVES = {
    "the national five-year plan's outline (纲要) is not the 2035 IP Outline": (
        "十四五规划纲要公布 研发投入年均增长7%以上",
        "《国民经济和社会发展第十四个五年规划和2035年远景目标纲要》今天公布。"
        "纲要还提出，要实施知识产权强国战略，完善知识产权相关法律法规。",
    ),
    "EU customs seizing fakes from China is not Chinese border enforcement": (
        "EU customs detain record number of fakes",
        "Customs officers at the European Union's borders detained 150 million counterfeit "
        "items last year. China remained the main source of the detained goods.",
    ),
    "知识产权强国 as a slogan is not the 2035 Outline": (
        "知识产权强国建设试点示范工作推进会召开",
        "国家知识产权局召开知识产权强国建设试点示范工作推进会，部署下一阶段工作。",
    ),
    "a company's patent royalties are not the national royalty trade": (
        "Chipmaker's licensing income rises",
        "The US chipmaker said royalties from Chinese handset makers for its patents rose to 5 "
        "billion dollars in the quarter as exports of phones recovered.",
    ),
    "US trade-secret verdict, no China": (
        "Jury awards $120 million in trade secret case",
        "A federal jury found that a Minnesota company misappropriated trade secrets of a "
        "California rival. The judge had denied a preliminary injunction. The defendant argued "
        "the information was generally known and will appeal under the Defend Trade Secrets Act.",
    ),
    "Belt and Road railway, no IP": (
        "China-Laos railway opens as flagship Belt and Road project",
        "The railway was built through cooperation between Chinese state companies and the "
        "Laotian government under the Belt and Road Initiative. Partners trained 600 local staff.",
    ),
    "Chinese sports club files trademarks": (
        "CBA club files new trademarks ahead of rebrand",
        "Guangdong Southern Tigers filed applications with CNIPA to register 40 trademarks for "
        "its new logo on clothing and drinks, hoping to earn more from licensing in China.",
    ),
    "Phase One farm purchases": (
        "China falls short of Phase One purchase commitments",
        "China bought 58 percent of the US goods it committed to buy under the Phase One trade "
        "deal. Officials pledged to protect intellectual property and buy more soybeans.",
    ),
    "FDA supplemental data, not Chinese patent examination": (
        "FDA reviews supplemental data for cancer drug",
        "The FDA asked the drug maker for supplemental data before approving a new indication. "
        "The company's patent on the drug runs until 2031.",
    ),
    "foreign firms suing in Chinese courts, not Chinese firms abroad": (
        "Foreign plaintiffs win most IP cases in Beijing",
        "Overseas brand owners filed more than 4,000 trademark and patent lawsuits in the Beijing "
        "court, and foreign companies won most of the intellectual property disputes they brought.",
    ),
    "fake news is not a counterfeit": (
        "China cracks down on online rumours about public health",
        "Chinese regulators closed accounts spreading fake news about vaccine safety and health, "
        "and police launched a campaign against online rumours.",
    ),
    "Real Madrid is not the Madrid System": (
        "中国球员加盟皇家马德里青年队",
        "据报道，一名中国年轻球员近日加盟皇家马德里青年队，成为首位进入该俱乐部梯队的中国球员。",
    ),
    "US jury, not a Chinese court": (
        "Texas jury awards triple damages against Chinese firm",
        "A jury in Texas awarded triple damages against a Chinese firm for wilful patent "
        "infringement, and a federal jury found a Chinese national guilty of stealing trade "
        "secrets under a criminal threshold.",
    ),
    "China's export figures are not border enforcement": (
        "China's exports beat forecasts, customs data show",
        "China's cross-border trade grew as exports rose 7.6 percent, customs data showed, "
        "including royalties for intellectual property.",
    ),
    "Hague tribunal, not the Hague design system": (
        "Hague tribunal rules against China in South China Sea case",
        "An international tribunal in The Hague ruled that China's claims lack legal basis, and "
        "that islands designed by Chinese engineers harmed coral reefs.",
    ),
    "a trade-secret defendant arguing the secret was public is not the burden shift": (
        "Suzhou court hears chip trade secret case",
        "In a Suzhou trade secret case the defendant argued the circuit layout was publicly known "
        "and said it had developed the design independently.",
    ),
    "a procedural order in a pending trade-secret case is not an injunction": (
        "Suzhou court sets hearing in chip secrets case",
        "The Suzhou court ordered both sides to exchange evidence in the pending trade secret case "
        "and set a hearing for March.",
    ),
    "a company leaking its own client data is not officials leaking submitted secrets": (
        "Shenzhen firm fined after staff leak customer records",
        "A Shenzhen data broker was fined after employees leaked confidential information about "
        "customers to a rival, China's market regulator said.",
    ),
    "platforms deleting malicious software or rumours are not IP takedowns": (
        "Chinese app stores take down malicious apps",
        "China's cyberspace regulator told platforms to take down malicious apps and remove "
        "false rumours within 24 hours.",
    ),
    "tariffs raised as a penalty are not deterrent IP penalties": (
        "US raises tariffs on Chinese goods over IP theft",
        "Washington raised tariffs on Chinese goods as a penalty for intellectual property theft, "
        "a move Beijing called unjustified.",
    ),
    "a bank's pledged patent listed as a quality criterion is not pledge-financing volume": (
        "CNIPA explains what makes a patent valuable",
        "Patents that have been pledged for loans, filed abroad or kept in force for ten years "
        "count as valuable, CNIPA said in Beijing.",
    ),
    "a court's first-instance caseload is not the acceptance rate": (
        "Beijing courts close more IP cases",
        "Beijing courts concluded 60,000 first-instance intellectual property cases last year, and "
        "the appeal court overturned 3 percent of rulings on appeal.",
    ),
    "the US Chamber's IP index is not the public satisfaction survey": (
        "China rises in US Chamber IP index",
        "China scored 50 points out of 100 for IP protection in the US Chamber's International "
        "IP Index, a survey of 55 economies.",
    ),
    "a stock pledge is not an IP pledge": (
        "上市公司股权质押融资规模下降",
        "据统计，今年上半年上市公司股权质押融资金额同比下降两成，约为3000亿元。",
    ),
    "RCEP obligations reported from another member are not China's Phase One steps": (
        "RCEP enters into force for Indonesia",
        "Members commit to destroy seized counterfeits and refuse trademarks filed in bad faith. "
        "Indonesia's IP office plans joint training with CNIPA.",
    ),
    "a postpartum haemorrhage study is not a patent prosecution highway": (
        "Chinese hospitals cut deaths from PPH",
        "Hospitals in China cut deaths from postpartum haemorrhage (PPH) by a third, CNIPA-funded "
        "researchers said.",
    ),
}

# Each new branch, in words no fixture uses: the reporting a journalist would write without the
# commitment's own terms.
HITS = {
    "PO-1.7-8 (the criminal threshold for trade secrets, in Chinese)": (
        "侵犯商业秘密罪追诉标准调整",
        "根据《中华人民共和国刑法修正案（十一）》，侵犯商业秘密罪不再以造成重大损失作为入罪条件，"
        "改为情节严重。",
    ),
    "CN-INTL-BRI (the IP office signing with Belt and Road partners, IP unnamed there)": (
        "CNIPA briefing on international work",
        "The China National Intellectual Property Administration held its press conference. "
        "The deputy commissioner said: we have signed cooperation documents with 50 partner "
        "countries along the Belt and Road.",
    ),
    "CN-INTL-GOVERNANCE (China's part in WIPO negotiations)": (
        "China at WIPO",
        "A Chinese delegation took an active part in the WIPO diplomatic conference on "
        "design law formalities and tabled proposals on artificial intelligence.",
    ),
    "PO-1.5": (
        "New rules on commercial secrets cases",
        "Under the SPC rules on commercial secrets, once the owner shows it kept the data "
        "confidential, the accused must prove the information was publicly known or obtained "
        "lawfully, lawyers in Beijing said.",
    ),
    "PO-1.6": (
        "Court stops ex-engineer from using recipe",
        "A Hangzhou court ordered a former engineer to stop using the trade secrets while the case "
        "is pending, two days after the owner applied.",
    ),
    "PO-1.9": (
        "Officials who leak data submitted by applicants face penalties",
        "China's new licensing rules forbid government bodies and outside experts from disclosing "
        "confidential information that companies submit in applications.",
    ),
    "PO-1.11": (
        "Generic maker wins early ruling",
        "A Beijing court found that the generic drug does not fall within the scope of the listed "
        "patent, clearing the way for NMPA approval.",
    ),
    "PO-1.12b": (
        "Drug maker gets longer patent",
        "CNIPA agreed to lengthen the patent term of the new drug by two years to make up for the "
        "time spent in regulatory review before marketing approval in China.",
    ),
    "PO-1.13": (
        "Seller wins damages over malicious takedown",
        "A Shenzhen court said the brand abused the takedown process with a malicious complaint "
        "against a rival seller on the e-commerce platform.",
    ),
    "PO-1.14": (
        "Platforms may lose permits over fakes",
        "China's regulator may revoke the operating permits of e-commerce platforms that keep "
        "selling counterfeit goods.",
    ),
    "PO-1.27": (
        "China toughens IP crime penalties",
        "China's legislature raised the maximum prison term for selling counterfeit goods and "
        "higher fines for copyright piracy.",
    ),
    "PO-ACTION-PLAN": (
        "Beijing publishes IP to-do list",
        "The national IP administration issued a promotion plan for strengthening IP protection "
        "with 100 tasks. It followed the trade deal with Washington.",
    ),
    "CN-SATISFACTION": (
        "Public rates China's IP protection at 81 points",
        "A national survey of how companies rate intellectual property protection in China gave a "
        "score of 81 out of 100.",
    ),
    "CN-PLEDGE-COURT": (
        "专利质押融资创新高",
        "今年前三季度，全国专利商标质押融资登记金额达到6000亿元。",
    ),
    "CN-INTL-BRI": (
        "China and Uzbekistan sign deals",
        "The leaders pledged to deepen cooperation under the Belt and Road Initiative. CNIPA and "
        "Uzbekistan's IP agency signed a cooperation agreement on patent examination.",
    ),
    "PO-1.5 (the shift's sentence says 'the information'; the trade secret is named elsewhere)": (
        "SPC rules on trade secrets take effect",
        "The court's provisions on trade secrets take effect on Friday. Once the owner shows it "
        "guarded the information, the defendant must prove it was in the public domain or was "
        "developed on its own, lawyers in Beijing said.",
    ),
    "PO-1.7-8 (the loss threshold told as 'large losses' in the criminal code)": (
        "USTR notes criminal reforms",
        "The report said China's criminal code no longer requires proof of large losses before "
        "police can open a case on trade secret theft.",
    ),
    "PO-1.11 (the early-resolution mechanism told in other words)": (
        "Drug patent mechanism starts",
        "A mechanism for resolving patent disputes before generic drugs are approved took effect "
        "in China in July.",
    ),
    "CN-ROYALTY-350": (
        "China's IP fee bill rises",
        "Money paid and received across China's borders for the use of patents and trademarks "
        "reached 380 billion yuan last year.",
    ),
    "CN-PLEDGE-COURT (the acceptance rate told as a percentage)": (
        "Fewer appeals in IP cases",
        "In 92 percent of first-instance IP civil cases the parties accepted the judgment, the "
        "Supreme People's Court said.",
    ),
    "PO-1.5 (the burden sentence names the law, not the secret)": (
        "Shanghai court rules in trade secret case",
        "In the Shanghai case, the court applied the burden-shifting rule of Article 32 AUCL.",
    ),
    "PO-1.15-17 (the generic-name sentence says only 'names')": (
        "US cheesemakers may object to EU list",
        "China published 175 EU geographical indications for objection. Under the Phase One "
        "deal, names that American companies use as generic terms stay free for everyone.",
    ),
    "PO-1.20 (infringing goods, 侵权货物, rather than fakes)": (
        "海关集中销毁侵权货物",
        "前三季度，全国海关共销毁侵权货物2100余万件。",
    ),
    "PO-1.26 (the administrative side named by its agency)": (
        "More IP cases handed to police",
        "The market regulator in Zhejiang transferred 286 suspected criminal trademark cases to "
        "the police in the first half.",
    ),
    "PO-1.28 (court statistics on enforcement, in Chinese)": (
        "最高法发布知识产权司法保护状况",
        "2024年，全国法院执结知识产权案件4.9万件，执行到位金额41.7亿元。",
    ),
    "CN-OVERSEAS-PAT-90K": (
        "Chinese patents abroad surge",
        "Chinese applicants were granted about 104,000 invention patents in foreign "
        "jurisdictions last year.",
    ),
    "WIPO-HAGUE-CN": (
        "China joins design treaty",
        "China's accession to the Hague Agreement on industrial designs took effect on May 5, "
        "letting applicants protect designs in many countries with one filing.",
    ),
    "RCEP-CH11 (the IP chapter in a sentence that does not name the pact)": (
        "RCEP enters into force across Asia",
        "The pact took effect on January 1 for ten countries. Its chapter on intellectual "
        "property runs to 83 articles and two annexes.",
    ),
    "PO-1.3-4 (individuals named as infringers, no 'misappropriation')": (
        "Trade secret rules widened",
        "China's revised competition law treats natural persons, not only companies, as "
        "infringers when they take a rival's trade secrets.",
    ),
    "PO-1.3-4 (inducing a breach of confidence is one of the acts)": (
        "What counts as taking a secret",
        "Under China's rules, inducing an employee to break a duty of confidence now counts as "
        "misappropriation of trade secrets.",
    ),
    "CN-HVP-12 (a national figure announced in a provincial city)": (
        "国家知识产权局在上海发布2024年知识产权统计数据",
        "2024年底，我国每万人口高价值发明专利拥有量达到14件。",
    ),
    "CN-HVP-12 (a province in the title beside the nation)": (
        "Guangdong leads as China's high-value patent count rises",
        "China had 14 high-value invention patents per 10,000 people at the end of 2024, "
        "CNIPA said.",
    ),
    "CN-OUTLINE-2035 (a progress report on the Outline, in Chinese)": (
        "纲要实施三年成效",
        "国家知识产权局介绍《知识产权强国建设纲要（2021—2035年）》实施三年来的进展情况。",
    ),
    # Round 11 (fixtures/match_feed r11*): the misses.
    "PO-1.6 (an injunction sentence about 'the secret', in a trade-secret story)": (
        "New trade secret rules in China: what employers need to know",
        "Where a defendant is about to disclose a secret, courts may issue behaviour-preservation "
        "orders before litigation.",
    ),
    "PO-1.12b (compensation that offsets time lost to drug review, no word 'term')": (
        "China passes fourth Patent Law amendment",
        "A separate paragraph provides compensation for new drug-related invention patents, to "
        "offset time lost to marketing review in China.",
    ),
    "PO-1.19 (China's customs acting on European complaints are China's, not Europe's)": (
        "Market regulator cracks down on counterfeit masks",
        "China's market regulator stepped up enforcement against counterfeit masks that threaten "
        "health and safety. After complaints from several European governments about defective "
        "masks, the commerce ministry and customs authorities introduced export checks.",
    ),
    # Round 10 (fixtures/match_feed r10*): the misses, each a way of saying it.
    "PO-ACTION-PLAN (a work plan for the trade agreement's IP obligations)": (
        "China publishes timetable for trade-deal IP obligations",
        "China's IP office released a work plan that assigns deadlines and lead agencies for the "
        "intellectual property obligations Beijing accepted in its trade agreement with the "
        "United States.",
    ),
    "PO-1.5 (the defendant must prove it is no trade secret)": (
        "China's trade secret provisions: key points",
        "Article 32 of the AUCL provides that once the claimant shows its secret was likely "
        "misappropriated, the defendant must prove that the information is not a trade secret.",
    ),
    "PO-1.12a (extending the term for delay, patent far from term)": (
        "China's revised patent rules take effect",
        "Where an invention patent is granted more than four years after filing, the patentee "
        "may ask CNIPA to extend the term to compensate for unreasonable examination delay.",
    ),
    "PO-1.15-17 (China's own rules for judging generic names of GIs)": (
        "国家知识产权局发布地理标志通用名称判定规则",
        "规则明确，判定一个名称是否属于通用名称，应当以相关公众的通常认知为准。",
    ),
}


@pytest.fixture(scope="module")
def config():
    return load_config(CONFIG_DIR)


@pytest.fixture(scope="module")
def matcher(config):
    return compile_matcher(config.commitments, config.aliases)


def hit_ids(matcher, title: str, text: str) -> set[str]:
    return {hit.commitment_id for hit in matcher.match(title, text)}


def test_there_are_43_commitments_with_unique_ids(config):
    ids = [c.id for c in config.commitments]
    assert len(ids) == 43
    assert len(set(ids)) == 43


@pytest.mark.skipif(not SHARED_COMMITMENTS.exists(), reason="../shared is not present")
def test_ids_are_the_shared_data_ids_in_order(config):
    shared = [entry["id"] for entry in json.loads(SHARED_COMMITMENTS.read_text("utf-8"))]
    assert [c.id for c in config.commitments] == shared


TAG_VOCABULARY = {
    *("phase-one", "14th-fyp", "outline-2035", "rcep", "wipo", "eu-china"),
    *("trade-secrets", "patents", "pharma", "trademarks", "copyright", "gi", "enforcement"),
    *("counterfeits", "online", "courts", "indicators", "international", "china", "us", "eu"),
}


def test_every_commitment_is_documented_and_tagged(config):
    for commitment in config.commitments:
        assert commitment.description, commitment.id
        assert commitment.source and commitment.article, commitment.id
        assert commitment.tags and commitment.keywords, commitment.id
        # digest groups select by tag: a typo would silently drop a commitment from a digest
        assert set(commitment.tags) <= TAG_VOCABULARY, commitment.id


@pytest.mark.parametrize(
    "commitment_id",
    [
        c["id"]
        for c in tomllib.loads((CONFIG_DIR / "commitments.toml").read_text("utf-8"))["commitment"]
    ],
)
def test_each_query_compiles_alone(config, commitment_id):
    commitment = next(c for c in config.commitments if c.id == commitment_id)
    parse_query(commitment.query, config.aliases, commitment_id=commitment.id)
    if commitment.exclude:
        parse_query(commitment.exclude, config.aliases, commitment_id=commitment.id)
    compile_matcher([commitment], config.aliases)


def test_every_alias_is_used(config):
    text = " ".join(c.query + " " + (c.exclude or "") for c in config.commitments)
    text += " ".join(config.aliases.values())
    for name in config.aliases:
        assert f"@{name}" in text, f"alias @{name} is never used"


def test_seed_like_text_hits_bri_and_governance(matcher):
    hits = hit_ids(matcher, SEED_LIKE_TITLE, SEED_LIKE_TEXT)
    assert {"CN-INTL-BRI", "CN-INTL-GOVERNANCE"} <= hits


@pytest.mark.skipif(not SEED.exists(), reason="../shared is not present")
def test_the_seed_article_hits_bri_and_governance(matcher):
    raw = SEED.read_text("utf-8")
    title = raw.strip().splitlines()[0]
    hits = hit_ids(matcher, title, raw)
    assert {"CN-INTL-BRI", "CN-INTL-GOVERNANCE"} <= hits


@pytest.mark.parametrize("case", sorted(HARD_NEGATIVES))
def test_hard_negatives_hit_nothing(matcher, case):
    title, text = HARD_NEGATIVES[case]
    assert hit_ids(matcher, title, text) == set()


@pytest.mark.parametrize("labelled", LABELLED_SETS, ids=lambda path: path.name)
def test_labels_name_every_article_and_only_real_commitments(config, labelled):
    labels = json.loads((labelled / "labels.json").read_text("utf-8"))
    files = {path.name for path in (labelled / "articles").glob("*.json")}
    assert set(labels) == files
    known = {c.id for c in config.commitments}
    assert {cid for ids in labels.values() for cid in ids} <= known


@pytest.mark.parametrize("labelled", LABELLED_SETS, ids=lambda path: path.name)
def test_bench_runs_and_beats_the_keyword_baseline(labelled):
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "match_quality.py"),
            "--articles",
            str(labelled / "articles"),
            "--labels",
            str(labelled / "labels.json"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert {"articles", "precision", "recall", "f1", "per_commitment", "baseline"} <= set(result)
    assert result["articles"] == len(json.loads((labelled / "labels.json").read_text("utf-8")))
    # A floor, not a target: it catches a query that stops matching or starts matching everything.
    assert result["f1"] >= 0.8
    assert result["f1"] > result["baseline"]["f1"]
    # The digest thresholds: keeping every hit is the overall figure, and a higher min_score
    # keeps fewer hits and finds fewer reports.
    thresholds = result["by_min_score"]
    assert thresholds["1.0"]["recall"] == result["recall"]
    assert thresholds["1.0"]["precision"] == result["precision"]
    kept = [figures["hits"] for figures in thresholds.values()]
    recalls = [figures["recall"] for figures in thresholds.values()]
    assert kept == sorted(kept, reverse=True) and kept[0] > kept[-1]
    assert recalls == sorted(recalls, reverse=True)


@pytest.mark.parametrize("case", sorted(HITS))
def test_paraphrases_hit_their_commitment(matcher, case):
    title, text = HITS[case]
    commitment_id = case.split(" ", 1)[0]  # "ID" or "ID (what the case shows)"
    assert commitment_id in hit_ids(matcher, title, text)


# Neighbours: the story is about one commitment and shares the words of another.
NEIGHBOURS = {
    "a drug's extension by years is PO-1.12b, not slow-examination adjustment (PO-1.12a)": (
        "Beijing drug maker wins longer patent for heart drug",
        "CNIPA agreed to extend the term of the patent on the heart drug by 3 years to make up "
        "for time lost in clinical trials before marketing approval in China.",
        "PO-1.12b",
        "PO-1.12a",
    ),
    "Chinese filings under the Hague System are CN-PCT-GLOBAL-SERVICES, not the accession": (
        "China keeps top spot in international patent filings",
        "China remained the largest filer under WIPO's Patent Cooperation Treaty in 2025. For "
        "designs, filings from China under the Hague System continued to grow.",
        "CN-PCT-GLOBAL-SERVICES",
        "WIPO-HAGUE-CN",
    ),
    "a high pledge amount as one mark of a valuable patent is CN-HVP-12, not pledge volume": (
        "什么是高价值发明专利",
        "高价值发明专利包括在海外有同族专利、获得较高质押融资金额的有效发明专利。",
        "CN-HVP-12",
        "CN-PLEDGE-COURT",
    ),
    "customs listed among agencies whose goods were destroyed is PO-1.20, not PO-1.21": (
        "各地集中销毁侵权假冒商品",
        "全国各地集中销毁了市场监管、海关、公安等部门没收的侵权假冒商品，共计300吨。"
        "此前，执法部门在多地查获了一批假冒商品。",
        "PO-1.20",
        "PO-1.21",
    ),
}


@pytest.mark.parametrize("case", sorted(NEIGHBOURS))
def test_neighbours_hit_only_their_own_commitment(matcher, case):
    title, text, expected, not_expected = NEIGHBOURS[case]
    hits = hit_ids(matcher, title, text)
    assert expected in hits
    assert not_expected not in hits


# Round 8, a realistic feed (fixtures/match_quality/README.md): a sentence that names a
# commitment's topic without reporting on it. Each case hit the commitment named before the
# round-8 changes; it must not now (other commitments may still hit: the story is real news).
NOT_REPORTS = {
    "a single trade-secret conviction is not the law on who is liable": (
        "员工带走图纸被判刑",
        "某区人民法院审结一起侵犯商业秘密刑事案件，被告人王某因犯侵犯商业秘密罪被判处有期徒刑二年。",
        "PO-1.3-4",
    ),
    "the competition law in a list of amended laws is not the trade-secret change": (
        "Court guidance on punitive damages",
        "China's top court issued guidance on punitive damages, which are now available under "
        "the recently amended Trademark Law, Patent Law and Anti-Unfair Competition Law. One of "
        "its model cases concerned trade secrets.",
        "PO-1.3-4",
    ),
    "presuming intent is not presuming who owns the copyright": (
        "Court guidance on wilful infringement",
        "Courts in China may presume intent when a defendant kept infringing after a warning "
        "from the right holder. The rules cover copyright and trademarks.",
        "PO-1.29",
    ),
    "presuming intent in a copyright case is not the ownership presumption": (
        "Court guidance on damages",
        "Chinese courts may presume intent in copyright cases when a defendant ignored a warning.",
        "PO-1.29",
    ),
    "a measure citing the Outline as its basis is not news of the Outline": (
        "某省启动专利导航试点",
        "为贯彻落实《知识产权强国建设纲要（2021—2035年）》，某省知识产权局启动专利导航试点，首批支持20家企业。",
        "CN-OUTLINE-2035",
    ),
    "entering China's PCT national phase is procedure, not wider use of the PCT": (
        "Translation deadlines for applicants",
        "Foreign applicants entering the Chinese national phase of a PCT application must file a "
        "translation within 30 months of the priority date.",
        "CN-PCT-GLOBAL-SERVICES",
    ),
    # Until round 8 a PPH counted as CN-INTL-PROTECT (a way to get rights abroad); five
    # articles by four writers, blind, said it is not: the commitment's means are PCT, Madrid,
    # Hague, dispute guidance and early warning.
    "another office's patent prosecution highway with CNIPA is not overseas dispute support": (
        "Brazil widens fast-track patent deals",
        "Brazil's patent office added CNIPA and two other offices to its Patent Prosecution "
        "Highway partners, cutting waiting times for applicants.",
        "CN-INTL-PROTECT",
    ),
    "RCEP's list of chapters is not its IP chapter": (
        "RCEP生效一周年",
        "RCEP协定共20个章节，涵盖货物贸易、服务贸易、投资、知识产权、电子商务等领域，中国与东盟贸易额继续增长。",
        "RCEP-CH11",
    ),
    "RCEP on the agenda of an IP week is not its IP chapter": (
        "Singapore IP office news",
        "RCEP, in force for Singapore since January, will be among the topics of the office's "
        "annual IP week in August.",
        "RCEP-CH11",
    ),
    "Hong Kong Customs is not China's border enforcement": (
        "China IP week in review",
        "Hong Kong Customs seized counterfeit watches worth HK$2 million in a raid; the fakes "
        "were destined for shops in Shenzhen.",
        "PO-1.21",
    ),
    "RCEP's bad-faith obligation, summarised, is not China curbing bad-faith marks": (
        "Asia-Pacific trade pact takes effect",
        "The agreement requires members to allow refusal or cancellation of trademarks filed in "
        "bad faith. China's IP office said its laws already complied.",
        "PO-1.24",
    ),
    "RCEP's bad-faith obligation, in Chinese, is not CNIPA's campaign": (
        "RCEP takes effect",
        "在商标方面，协定明确了对恶意商标申请的驳回或撤销。国家知识产权局表示将加强与其他成员国的合作。",
        "CN-QUALITY-BADFAITH",
    ),
    # Round 9: a province's or city's own figure or plan uses the national indicator's words.
    "a province's high-value patent figure is not the national indicator": (
        "江苏省发布知识产权白皮书",
        "全省每万人口高价值发明专利拥有量达到32件，较上年增加5件。",
        "CN-HVP-12",
    ),
    "a city's pledge financing is not the national volume": (
        "合肥上半年知识产权质押融资突破百亿元",
        "今年上半年，合肥市专利商标质押融资登记金额达到102亿元，同比增长31%。",
        "CN-PLEDGE-COURT",
    ),
    "a province's copyright industries are not the national share": (
        "Guangdong's copyright industries grow",
        "The province's copyright industries added 700 billion yuan of value, 5.6 percent of its "
        "GDP, against a target of 6 percent.",
        "CN-COPYIND-7.5",
    ),
    "the Hague system not reaching Hong Kong is not China's accession": (
        "Hong Kong design filings dip",
        "Hong Kong's design registry stays outside the Hague system, since the mainland's "
        "accession to the Hague Agreement does not extend to the city. Mainland Chinese firms "
        "filed most trademarks.",
        "WIPO-HAGUE-CN",
    ),
    # Round 11 (fixtures/match_feed r11*).
    "one bank's pledge loans are not the national pledge-financing figure": (
        "华信银行2025年知识产权质押贷款投放120亿元",
        "华信银行披露，2025年该行累计投放知识产权质押贷款120亿元，同比增长50%。",
        "CN-PLEDGE-COURT",
    ),
    "the amended competition law's Article 32 is the burden of proof, not who is liable": (
        "最高法商业秘密司法解释今起施行",
        "司法解释衔接2019年修改后的反不正当竞争法第三十二条：权利人提供初步证据，证明其已对"
        "商业秘密采取保密措施的，举证责任转由涉嫌侵权人承担。",
        "PO-1.3-4",
    ),
    # Round 10 (fixtures/match_feed r10*): a province's or city's story is not a national act.
    "a province's PCT count is not China's use of the PCT": (
        "Zhejiang PCT filings rise 12 percent",
        "Companies in the province filed 6,100 international applications under the Patent "
        "Cooperation Treaty last year, the provincial office said; Chinese applicants overall "
        "remain the largest users of the PCT.",
        "CN-PCT-GLOBAL-SERVICES",
    ),
    "a city's plan citing the Outline is not the Outline": (
        "Suzhou issues three-year plan to become an IP model city",
        "The municipal plan sets 40 tasks to implement the Outline for Building a Powerful "
        "Intellectual Property Country (2021-2035) and China's 14th five-year IP plan locally.",
        "CN-OUTLINE-2035",
    ),
    "a provincial measure naming patent linkage is not the linkage system": (
        "四川出台措施支持医药产业发展",
        "措施提出，鼓励企业用好药品专利纠纷早期解决机制，加强专利布局。",
        "PO-1.11",
    ),
    "another country joining the Hague system is not China joining": (
        "Brazil joins the Hague system for industrial designs",
        "Brazil deposited its instrument of accession to the Hague Agreement, which took effect "
        "on Tuesday. Members already include China, Japan and the European Union.",
        "WIPO-HAGUE-CN",
    ),
    "RCEP's list of chapters is not a report on its IP chapter": (
        "Japanese sake brewers eye China as RCEP tariff cuts begin",
        "Chinese tariffs on Japanese rice wine fell under RCEP this month. The agreement "
        "contains chapters on intellectual property, e-commerce and competition.",
        "RCEP-CH11",
    ),
    "an evidence preservation order is not a preliminary injunction": (
        "Chamber paper on trade secret litigation in China",
        "Members want courts in China to make more use of evidence preservation orders in "
        "trade secret cases.",
        "PO-1.6",
    ),
}


@pytest.mark.parametrize("case", sorted(NOT_REPORTS))
def test_passing_mentions_do_not_hit_the_commitment_they_name(matcher, case):
    title, text, commitment_id = NOT_REPORTS[case]
    assert commitment_id not in hit_ids(matcher, title, text)
