"""Silent-truncation detection: precision, recall and false positives on a generated evaluation set.

    python benchmarks/truncation.py                  # dev split (seed 1) and test split (seed 2)
    python benchmarks/truncation.py --misses 20      # also print 20 missed cuts and every false positive

The set is built offline from templates, a small hand-written corpus and seeded randomness: complete
answers of many forms (prose, markdown, lists, tables, fenced and unfenced code, JSON, Chinese,
Japanese, German, French, Spanish), and for each one a truncated copy cut at a random point. Every
copy is judged as if the provider had said `finish_reason="stop"`: silent truncation, the hard case.

Cuts fall uniformly on token boundaries (words with their leading space, punctuation marks, CJK
characters; words over 8 letters split into pieces, as BPE does), never in the answer's trailing
whitespace. A cut that leaves a complete-looking text (it ends right after a sentence's closing
punctuation, or exactly at the end of a line) is a "boundary cut": still counted as a truncation in
every headline number, and reported separately, because no heuristic reading the text alone can
tell "Paris is in France." from a longer answer cut after its first sentence.

Heuristics were tuned on the dev split only; the test split (another seed) is reported as held out.
A third table cuts at uniformly random *characters* instead of tokens (more mid-word cuts).
"""

# ruff: noqa: RUF001  # the corpus is multilingual: full-width punctuation is the point

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields

from llmroute.truncation import detect

# -- corpus -----------------------------------------------------------------------------------------

EN = [
    "Python's `json` module parses and serialises JSON documents.",
    "The function returns `None` when the key is missing, so check the result before using it.",
    "In most cases the default settings are a reasonable starting point.",
    "A list comprehension is usually faster than an explicit loop with `append`.",
    "Caching the result avoids recomputing it on every request.",
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "Water boils at 100 °C at sea level, but at a lower temperature on a mountain.",
    "Compound interest means you earn interest on the interest you have already earned.",
    "An index fund tracks a market index (such as the S&P 500) instead of picking stocks.",
    "If the tests pass locally but fail in CI, compare the Python versions first.",
    "Use a virtual environment so that each project has its own dependencies.",
    "The error usually means the server closed the connection before sending a response.",
    "Rate limits are applied per API key, not per IP address.",
    "Retrying immediately after a 429 error only makes the problem worse.",
    "Exponential backoff with jitter spreads the retries out over time.",
    "Roughly 70% of the Earth's surface is covered by water.",
    "The mitochondria produce most of the cell's supply of ATP.",
    "Sourdough relies on wild yeast and lactic acid bacteria rather than commercial yeast.",
    "Let the dough rest for at least 30 minutes before shaping it.",
    "Preheat the oven to 220 °C (425 °F) and place the tray on the middle rack.",
    "Kyoto has more than 1,600 Buddhist temples and about 400 Shinto shrines.",
    "The best time to visit is in spring, when the cherry trees are in bloom.",
    "A rail pass can save money if you plan to travel between several cities.",
    "The U.S. Federal Reserve sets the target range for the federal funds rate.",
    "Diversification reduces risk, but it does not eliminate it.",
    "Does the function need to handle an empty list?",
    "What happens if two requests update the same row at the same time?",
    "That is exactly why the lock is needed!",
    "This approach works well for small datasets, e.g. a few thousand rows.",
    "The so-called “happy path” is the case where nothing goes wrong.",
    "As the documentation puts it, “explicit is better than implicit.”",
    "The command `git rebase -i HEAD~3` lets you edit the last three commits.",
    "Make sure the file is saved with UTF-8 encoding.",
    "Each worker process has its own memory, so global variables are not shared.",
    "Async code helps when the program spends most of its time waiting for I/O.",
    "For CPU-bound work, use multiple processes instead of threads.",
    "The complexity of the algorithm is O(n log n) in the average case.",
    "Binary search only works on sorted data.",
    "A hash map gives average O(1) lookups at the cost of extra memory.",
    "The results were similar across all three experiments (see Table 2).",
    "Sleep, exercise and a balanced diet all affect concentration.",
    "Drinking enough water is especially important in hot weather.",
    "The museum is closed on Mondays and on public holidays.",
    "Tickets can be bought online or at the entrance.",
    "The new version removes the deprecated `connect()` method.",
    "Upgrading is straightforward: change the version number and run the tests.",
    "Note that the timeout is measured in seconds, not milliseconds.",
    "In short, both options work; the second one is easier to maintain.",
    "The answer depends on how often the data changes.",
    "Memory usage grew from 1.2 GB to 3.5 GB after the change.",
    "Most users will never notice the difference.",
    "The meeting has been moved to Thursday at 3 p.m.",
    "Please bring a copy of the signed contract.",
    "Renewable sources produced about 30% of the world's electricity in 2023.",
    "Solar panels are most efficient when they face the sun directly.",
    "The treaty was signed in 1648 and ended the Thirty Years' War.",
    "Shakespeare wrote about 37 plays and 154 sonnets.",
    "The recipe serves four people and takes about 45 minutes.",
    "Season the soup with salt, pepper and a squeeze of lemon juice.",
    "Why does this matter?",
    "Because small delays add up quickly when a page makes dozens of requests.",
    "The library is thread-safe, but the client objects are not.",
    "Close the file explicitly, or better, use a `with` block.",
    "Logging at DEBUG level in production can slow the service down noticeably.",
    "Our tests cover the parser, the validator and the command-line interface.",
]
EN_CLOSERS = [
    "Hope this helps!",
    "Let me know if you have any other questions.",
    "Happy coding! 🚀",
    "Good luck with your project! 😊",
    "(See the official documentation for the full list of options.)",
    "In other words: measure first, then optimise.",
    "Feel free to ask if anything is unclear.",
    "Enjoy your trip!",
    "That's it — you're done.",
    "Does that answer your question?",
    "**Answer:** 42",
    "**Final answer:** $x = 7$",
    "Best regards,\nThe Support Team",
    "More details: https://docs.python.org/3/library/json.html",
]
HEADINGS = [
    "Overview",
    "Why it matters",
    "How it works",
    "Step-by-step",
    "Example",
    "Common mistakes",
    "Performance",
    "Summary",
    "Next steps",
    "Key points",
    "Background",
    "Installation",
    "Troubleshooting",
]
INTROS = [
    "Here are the main points:",
    "Here is a short overview.",
    "There are a few things to keep in mind:",
    "Sure! Here's what you need to know.",
    "Good question. The short answer is yes, with a few caveats.",
    "The steps are as follows:",
    "Below is a comparison.",
    "Here is a quick summary of the options:",
]
PHRASES = [
    "Fresh basil",
    "Two cloves of garlic",
    "Olive oil",
    "A pinch of salt",
    "Python 3.12 or newer",
    "A GitHub account",
    "Docker Desktop",
    "Read the error message carefully",
    "Check the logs",
    "Restart the service",
    "Update the dependencies",
    "Write a failing test first",
    "Sunscreen",
    "Comfortable walking shoes",
    "A reusable water bottle",
    "Lower latency",
    "Better error messages",
    "Smaller memory footprint",
    "Support for async clients",
    "Automatic retries",
    "Log in to the dashboard",
    "Sign up for the newsletter",
    "Set the `TIMEOUT` variable",
    "Version 2.0 and later",
    "Unit tests",
    "Integration tests",
    "Type checking with mypy",
    "Linting with ruff",
    "Paris",
    "Berlin",
    "Madrid",
]
LABELS = [
    "Speed",
    "Cost",
    "Reliability",
    "Ease of use",
    "Security",
    "Scalability",
    "Maintenance",
    "Support",
    "Flexibility",
    "Accuracy",
]
DE = [
    "Die Hauptstadt von Deutschland ist Berlin.",
    "Der Zug fährt jeden Morgen um 7 Uhr ab.",
    "Bitte speichern Sie die Datei, bevor Sie das Programm schließen.",
    "Die Funktion gibt eine Liste mit allen gefundenen Einträgen zurück.",
    "Im Sommer ist es in Süddeutschland oft heiß und trocken.",
    "Das Ergebnis hängt stark von der Qualität der Eingabedaten ab.",
    "Warum funktioniert der Test nur auf meinem Rechner?",
    "Das ist eine sehr gute Frage!",
    "Er sagte: „Wir sehen uns morgen im Büro.“",
    "Für die Installation benötigen Sie Python 3.11 oder neuer.",
    "Die Kosten steigen mit der Anzahl der Anfragen pro Minute.",
    "Ein Index beschleunigt die Suche in großen Tabellen erheblich.",
    "Vergessen Sie nicht, die Änderungen zu speichern.",
    "Die Brücke wurde im Jahr 1883 eröffnet.",
    "Viele Museen sind montags geschlossen.",
    "Das Rezept reicht für vier Personen.",
    "Die Temperatur fällt in der Nacht auf etwa 5 °C.",
    "Kurz gesagt: Beide Varianten funktionieren, aber die zweite ist einfacher.",
    "Die Daten werden verschlüsselt übertragen (TLS 1.3).",
    "Bei Fragen wenden Sie sich bitte an den Support.",
    "Ich empfehle, zuerst die Dokumentation zu lesen.",
    "Der Server antwortet in weniger als 50 Millisekunden.",
]
FR = [
    "La capitale de la France est Paris.",
    "Le musée est fermé le lundi et les jours fériés.",
    "Cette fonction renvoie une liste vide si aucun élément ne correspond.",
    "Il faut compter environ deux heures de train entre Paris et Lyon.",
    "Pourquoi le programme plante-t-il au démarrage ?",
    "C'est une excellente question !",
    "Comme le dit le proverbe, « petit à petit, l'oiseau fait son nid ».",
    "Les résultats dépendent fortement de la qualité des données.",
    "Pensez à enregistrer vos modifications avant de quitter.",
    "La tour Eiffel a été construite entre 1887 et 1889.",
    "Le prix comprend le petit-déjeuner et l'accès à la piscine.",
    "Un index accélère considérablement les requêtes sur les grandes tables.",
    "En résumé : les deux méthodes fonctionnent, mais la seconde est plus simple.",
    "La température descend souvent sous 0 °C en hiver.",
    "Le serveur répond en moins de 50 millisecondes.",
    "Vous pouvez acheter les billets en ligne ou sur place.",
    "Les données sont chiffrées pendant le transfert (TLS 1.3).",
    "N'hésitez pas à me poser d'autres questions.",
    "La recette est prévue pour quatre personnes.",
    "Il est conseillé de lire la documentation avant de commencer.",
    "Fais-le maintenant, sinon tu l'oublieras.",
]
ES = [
    "La capital de España es Madrid.",
    "El museo está cerrado los lunes.",
    "¿Por qué falla la prueba solo en mi ordenador?",
    "¡Es una pregunta excelente!",
    "Esta función devuelve una lista vacía si no encuentra ningún elemento.",
    "El tren sale todas las mañanas a las 7.",
    "Los resultados dependen mucho de la calidad de los datos.",
    "No olvides guardar los cambios antes de salir.",
    "La Sagrada Familia todavía está en construcción.",
    "En verano hace mucho calor en el sur del país.",
    "Un índice acelera mucho las búsquedas en tablas grandes.",
    "En resumen: ambas opciones funcionan, pero la segunda es más sencilla.",
    "El servidor responde en menos de 50 milisegundos.",
    "Puedes comprar las entradas en línea o en la taquilla.",
    "Como dice el refrán, «más vale tarde que nunca».",
    "Los datos se cifran durante la transferencia (TLS 1.3).",
    "La receta es para cuatro personas.",
    "Te recomiendo leer la documentación antes de empezar.",
    "Si tienes más preguntas, no dudes en escribirme.",
    "El precio incluye el desayuno y el acceso a la piscina.",
    "¿Cuántas personas viven en la ciudad?",
]
ZH = [
    "北京是中国的首都。",
    "这个函数在找不到元素时返回一个空列表。",
    "请在关闭程序之前保存文件。",
    "为什么测试只在我的电脑上失败？",
    "这是一个很好的问题！",
    "结果在很大程度上取决于数据的质量。",
    "火车每天早上七点出发。",
    "博物馆周一闭馆。",
    "索引可以大大加快大表的查询速度。",
    "简而言之，两种方法都可行，但第二种更简单。",
    "服务器在五十毫秒内响应。",
    "你可以在网上或售票处购买门票。",
    "数据在传输过程中是加密的（TLS 1.3）。",
    "这个食谱适合四个人。",
    "建议先阅读文档，然后再开始。",
    "夏天南方通常又热又潮湿。",
    "他说：“我们明天在办公室见。”",
    "如果还有其他问题，请随时告诉我。",
    "长城全长两万多公里。",
    "使用虚拟环境可以让每个项目拥有自己的依赖。",
    "内存使用量从一点二GB增加到了三点五GB。",
]
JA = [
    "日本の首都は東京です。",
    "この関数は、要素が見つからない場合に空のリストを返します。",
    "プログラムを閉じる前にファイルを保存してください。",
    "なぜテストは私のパソコンでだけ失敗するのでしょうか？",
    "とても良い質問です！",
    "結果はデータの品質に大きく左右されます。",
    "電車は毎朝七時に出発します。",
    "博物館は月曜日が休館日です。",
    "インデックスを使うと、大きなテーブルの検索が速くなります。",
    "つまり、どちらの方法でも動きますが、二つ目のほうが簡単です。",
    "サーバーは五十ミリ秒以内に応答します。",
    "チケットはオンラインまたは窓口で購入できます。",
    "データは転送中に暗号化されます（TLS 1.3）。",
    "このレシピは四人分です。",
    "始める前にドキュメントを読むことをおすすめします。",
    "京都には千六百以上のお寺があります。",
    "彼は「明日オフィスで会いましょう」と言いました。",
    "ほかに質問があれば、いつでも聞いてください。",
    "夏はとても暑くて湿度が高いです。",
    "仮想環境を使うと、プロジェクトごとに依存関係を分けられます。",
]
SHORT = [
    "Paris",
    "Paris.",
    "42",
    "Yes",
    "No.",
    "Positive",
    "negative",
    "B",
    "The Eiffel Tower",
    "3.14159",
    "True",
    "SELECT name FROM users;",
    "¡Sí!",
    "はい",
    "是的",
    "Berlin",
    "Neutral",
    "1889",
    "Option A",
    "Not enough information",
    "😊",
    "O(n log n)",
    "$12.50",
    "Done",
    "Madrid, Spain",
]
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "user",
    "order",
    "item",
    "price",
    "total",
    "name",
    "value",
    "count",
    "status",
    "result",
    "cache",
    "config",
    "token",
    "limit",
    "region",
    "model",
    "provider",
    "request",
    "response",
    "error",
    "retry",
    "timeout",
]

PY = [
    'def {f}({a}, {b}):\n    """Return the {w} of {a} and {b}."""\n    return {a} + {b}\n',
    "def {f}({a}: list[int]) -> int:\n    total = 0\n    for x in {a}:\n        if x % 2 == 0:\n"
    "            total += x\n    return total\n",
    "class {C}:\n    def __init__(self, {a}: str) -> None:\n        self.{a} = {a}\n        self.items: "
    "dict[str, int] = {{}}\n\n    def add(self, key: str, value: int = {n}) -> None:\n"
    "        self.items[key] = value\n",
    'import json\n\n\ndef {f}(path: str) -> dict:\n    with open(path, encoding="utf-8") as fh:\n'
    "        data = json.load(fh)\n    return {{k: v for k, v in data.items() if v is not None}}\n",
    "async def {f}(client, urls):\n    results = []\n    for url in urls:\n"
    "        resp = await client.get(url)\n        resp.raise_for_status()\n"
    '        results.append(resp.json()["{w}"])\n    return results\n',
    "def {f}(n):\n    if n < 2:\n        return n\n    return {f}(n - 1) + {f}(n - 2)\n\n\n"
    "print([{f}(i) for i in range({n})])\n",
    '{a} = [{n}, 3, 7, 1]\n{a}.sort(reverse=True)\nprint(f"largest: {{{a}[0]}}, count: {{len({a})}}")\n',
    "try:\n    value = int(text)\nexcept ValueError:\n    value = {n}  # fall back to the default\n"
    "print(value)\n",
]
JS = [
    "function {f}({a}, {b}) {{\n  return {a} * {b};\n}}\n\nconsole.log({f}(2, {n}));\n",
    "const {a} = [{n}, 4, 9];\nconst doubled = {a}.map((x) => x * 2);\nconsole.log(doubled);\n",
    "async function {f}(url) {{\n  const res = await fetch(url);\n  if (!res.ok) {{\n"
    "    throw new Error(`HTTP ${{res.status}}`);\n  }}\n  return res.json();\n}}\n",
    "export class {C} {{\n  constructor({a}) {{\n    this.{a} = {a};\n  }}\n\n  get{C}() {{\n"
    "    return this.{a};\n  }}\n}}\n",
    'const config = {{\n  {w}: "{w}-{n}",\n  retries: 3,\n  timeout: {n}00,\n}};\n\n'
    "module.exports = config;\n",
    'document.querySelector("#{w}").addEventListener("click", () => {{\n'
    '  console.log("clicked {w}");\n}});\n',
    "for (let i = 0; i < {n}; i++) {{\n  if (i % 3 === 0) continue;\n  console.log(i);\n}}\n",
    'const {f} = ({a}) => {a}.filter(Boolean).join(", ");\n',
]

# -- generators -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    form: str
    text: str
    json_mode: bool = False


def sentences(rng: random.Random, pool: list[str], k: int, sep: str = " ") -> str:
    return sep.join(rng.sample(pool, min(k, len(pool))))


def paragraphs(rng: random.Random, pool: list[str], n: int, sep: str = " ") -> str:
    return "\n\n".join(sentences(rng, pool, rng.randint(2, 5), sep) for _ in range(n))


def bullet_list(rng: random.Random, n: int | None = None) -> str:
    n = n or rng.randint(3, 7)
    # One style per list, as models write them; one list in ten mixes sentences and phrases.
    style = rng.choice(["sentence", "phrase", "label", "numbered", "numbered-phrase"] * 2 + ["mixed"])
    marker = rng.choice(["-", "*", "•"])
    items = []
    for i in range(n):
        if style == "sentence":
            items.append(f"{marker} {rng.choice(EN)}")
        elif style == "phrase":
            items.append(f"{marker} {rng.choice(PHRASES)}")
        elif style == "label":
            items.append(f"{marker} **{rng.choice(LABELS)}:** {rng.choice(EN)}")
        elif style == "numbered":
            items.append(f"{i + 1}. {rng.choice(EN)}")
        elif style == "numbered-phrase":
            items.append(f"{i + 1}. {rng.choice(PHRASES)}")
        else:
            items.append(f"{marker} {rng.choice(EN if rng.random() < 0.6 else PHRASES)}")
    if rng.random() < 0.2 and not style.startswith("numbered"):  # a nested list under the last item
        items += [f"  {marker} {rng.choice(PHRASES)}" for _ in range(2)]
    return "\n".join(items)


def table(rng: random.Random) -> str:
    cols = rng.randint(2, 5)
    head = ["Option", "Price", "Speed", "Notes", "Region", "Latency"][:cols]
    rows = []
    for _ in range(rng.randint(2, 7)):
        cells = [rng.choice(PHRASES)]
        for _ in range(cols - 1):
            cells.append(
                rng.choice(
                    [f"${rng.randint(1, 99)}.{rng.randint(0, 99):02d}", str(rng.randint(1, 500)), "✓", "—"]
                )
                if rng.random() < 0.6
                else rng.choice(["fast", "slow", "EU only", "beta", "n/a", "`gpt-5.4`"])
            )
        rows.append(cells)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def code_block(rng: random.Random) -> tuple[str, str]:
    lang = rng.choice(["python", "javascript"])
    template = rng.choice(PY if lang == "python" else JS)
    name = rng.choice(WORDS)
    code = template.format(
        f=f"get_{name}" if lang == "python" else f"get{name.title()}",
        a=rng.choice(["items", "values", "data", "nums"]),
        b=rng.choice(["other", "factor", "extra"]),
        C=name.title() + rng.choice(["Store", "Client", "Cache"]),
        n=rng.randint(2, 99),
        w=rng.choice(WORDS),
    )
    return lang, code


def gen_prose(rng: random.Random) -> Sample:
    text = paragraphs(rng, EN, rng.randint(1, 4))
    if rng.random() < 0.4:
        text += "\n\n" + rng.choice(EN_CLOSERS)
    return Sample("prose", text)


def gen_markdown(rng: random.Random) -> Sample:
    parts = [rng.choice(INTROS) if rng.random() < 0.5 else sentences(rng, EN, 2)]
    for _ in range(rng.randint(1, 3)):
        parts.append(f"{'#' * rng.choice([2, 3])} {rng.choice(HEADINGS)}")
        parts.append(rng.choice([paragraphs(rng, EN, 1), bullet_list(rng), table(rng)]))
    if rng.random() < 0.6:
        parts.append(rng.choice([paragraphs(rng, EN, 1), rng.choice(EN_CLOSERS)]))
    return Sample("markdown", "\n\n".join(parts))


def gen_list(rng: random.Random) -> Sample:
    parts = [rng.choice(INTROS)] if rng.random() < 0.7 else []
    parts.append(bullet_list(rng))
    if rng.random() < 0.35:
        parts.append(rng.choice(EN + EN_CLOSERS))
    return Sample("list", "\n\n".join(parts))


def gen_table(rng: random.Random) -> Sample:
    parts = [rng.choice(INTROS)] if rng.random() < 0.7 else []
    parts.append(table(rng))
    if rng.random() < 0.5:
        parts.append(sentences(rng, EN, rng.randint(1, 2)))
    return Sample("table", "\n\n".join(parts))


def gen_code(rng: random.Random) -> Sample:
    lang, code = code_block(rng)
    parts = []
    if rng.random() < 0.85:
        parts.append(rng.choice(["Here's an example:", "You can do it like this:", sentences(rng, EN, 1)]))
    parts.append(f"```{lang}\n{code}```")
    if rng.random() < 0.7:
        parts.append(rng.choice([paragraphs(rng, EN, 1), bullet_list(rng, 3), rng.choice(EN_CLOSERS)]))
    return Sample("code", "\n\n".join(parts))


def gen_code_unfenced(rng: random.Random) -> Sample:
    return Sample("code-unfenced", code_block(rng)[1])


def json_value(rng: random.Random, depth: int) -> object:
    roll = rng.random()
    if depth < 3 and roll < 0.25:
        return {rng.choice(WORDS): json_value(rng, depth + 1) for _ in range(rng.randint(1, 4))}
    if depth < 3 and roll < 0.4:
        return [json_value(rng, depth + 1) for _ in range(rng.randint(1, 4))]
    return rng.choice(
        [
            rng.randint(-5, 5000),
            round(rng.uniform(0, 100), 2),
            True,
            False,
            None,
            rng.choice(EN),
            rng.choice(WORDS),
        ]
    )


def gen_json(rng: random.Random) -> Sample:
    if rng.random() < 0.7:
        value: object = {rng.choice(WORDS): json_value(rng, 1) for _ in range(rng.randint(2, 6))}
    else:
        value = [json_value(rng, 1) for _ in range(rng.randint(2, 5))]
    text = json.dumps(value, indent=rng.choice([None, 2]), ensure_ascii=rng.random() < 0.5)
    roll = rng.random()
    if roll < 0.5:
        return Sample("json", text, json_mode=True)
    if roll < 0.8:
        return Sample("json", text)
    return Sample("json", f"Here is the JSON:\n\n```json\n{text}\n```")


def gen_lang(form: str, pool: list[str]) -> Callable[[random.Random], Sample]:
    cjk = form in ("zh", "ja")

    def gen(rng: random.Random) -> Sample:
        sep = "" if cjk else " "
        text = paragraphs(rng, pool, rng.randint(1, 3), sep)
        if rng.random() < 0.25:
            items = "\n".join(f"- {s}" for s in rng.sample(pool, rng.randint(2, 4)))
            text = f"{text}\n\n{items}" + (f"\n\n{rng.choice(pool)}" if rng.random() < 0.5 else "")
        return Sample(form, text)

    return gen


GENERATORS: dict[str, Callable[[random.Random], Sample]] = {
    "prose": gen_prose,
    "markdown": gen_markdown,
    "list": gen_list,
    "table": gen_table,
    "code": gen_code,
    "code-unfenced": gen_code_unfenced,
    "json": gen_json,
    "zh": gen_lang("zh", ZH),
    "ja": gen_lang("ja", JA),
    "de": gen_lang("de", DE),
    "fr": gen_lang("fr", FR),
    "es": gen_lang("es", ES),
}

# -- cutting ----------------------------------------------------------------------------------------

TOKEN = re.compile(r"\s+|[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uff00-\uffef]|[^\W_]+|[\W_]", re.UNICODE)
TERMINAL = set(".!?…。！？")


def token_boundaries(text: str) -> list[int]:
    """End offsets of pseudo-BPE tokens: words over 8 letters are split into 3-6 letter pieces."""
    ends = []
    for m in TOKEN.finditer(text):
        start, end = m.span()
        if end - start > 8 and m.group()[0].isalnum():
            pos = start
            while end - pos > 6:
                pos += 3 + (pos * 7 + end) % 4
                ends.append(pos)
        ends.append(end)
    return ends


def cut(rng: random.Random, text: str, by: str) -> tuple[str, bool] | None:
    """A truncated copy and whether the cut fell on a boundary; None if no proper cut exists."""
    full = text.rstrip()
    positions = token_boundaries(text) if by == "token" else list(range(1, len(text)))
    first = len(text) - len(text.lstrip())  # a cut must keep some text and drop some
    positions = [p for p in positions if first < p < len(full)]
    if not positions:
        return None
    pos = rng.choice(positions)
    part = text[:pos]
    tail = part.rstrip().rstrip(")]}\"'“”’»」』）*_`")
    at_line_end = text[len(part.rstrip()) :].lstrip(" \t")[:1] in ("\n", "")
    boundary = bool(tail and tail[-1] in TERMINAL) or at_line_end
    return part, boundary


# -- evaluation -------------------------------------------------------------------------------------


@dataclass
class Tally:
    complete: int = 0
    false_pos: int = 0
    cuts: int = 0
    caught: int = 0
    boundary: int = 0
    boundary_caught: int = 0
    missed_opening: int = 0  # missed cuts that left at most three words: "Here is the"

    def add(self, other: Tally) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def row(self, name: str) -> str:
        def pct(part: int, whole: int) -> str:
            return f"{part / whole:.1%}" if whole else "—"

        inner, flagged = self.cuts - self.boundary, self.caught + self.false_pos
        return (
            f"| {name:<13} | {self.complete:>5} | {self.cuts:>5} | {pct(self.caught, flagged):>6} "
            f"| {pct(self.caught, self.cuts):>6} | {pct(self.false_pos, self.complete):>5} "
            f"| {pct(self.boundary, self.cuts):>6} | {pct(self.caught - self.boundary_caught, inner):>9} |"
        )


HEADER = (
    "| form          | compl | cuts  | precis | recall | FPR   | bound. | recall-in |\n"
    "|---------------|------:|------:|-------:|-------:|------:|-------:|----------:|"
)


def build(seed: int, per_form: int) -> list[Sample]:
    rng = random.Random(seed)
    samples = [gen(rng) for gen in GENERATORS.values() for _ in range(per_form)]
    samples += [Sample("short", s) for s in SHORT]
    return samples


@dataclass
class Result:
    tallies: dict[str, Tally]
    fired_cut: Counter[str]
    fired_complete: Counter[str]
    missed: list[str]
    false_positives: list[str]


def evaluate(seed: int, per_form: int, by: str, files: list[str] | None = None) -> Result:
    samples = build(seed, per_form) if files is None else [Sample("file", _read(f)) for f in files]
    rng = random.Random(seed * 1000 + (by == "char"))
    result = Result({}, Counter(), Counter(), [], [])
    for sample in samples:
        tally = result.tallies.setdefault(sample.form, Tally())
        verdict = detect(sample.text, "stop", json_mode=sample.json_mode)
        tally.complete += 1
        if verdict.truncated:
            tally.false_pos += 1
            result.fired_complete.update(_key(r) for r in verdict.reasons)
            result.false_positives.append(f"[{sample.form}] {verdict.reasons}\n    ...{sample.text[-200:]!r}")
        if sample.form == "short":
            continue  # a three-word answer has no meaningful truncated copy
        cut_result = cut(rng, sample.text, by)
        if cut_result is None:
            continue
        part, boundary = cut_result
        verdict = detect(part, "stop", json_mode=sample.json_mode)
        tally.cuts += 1
        tally.boundary += boundary
        if verdict.truncated:
            tally.caught += 1
            tally.boundary_caught += boundary
            result.fired_cut.update(_key(r) for r in verdict.reasons)
        elif not boundary:
            stripped = part.strip()
            if "\n" not in stripped and len(stripped.split()) <= 3:
                tally.missed_opening += 1
            result.missed.append(f"[{sample.form}] ...{part[-160:]!r}")
    return result


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()


def _key(reason: str) -> str:
    """A reason without its details, for counting: "ends with 'the', ..." -> "ends with …, ..."."""
    return re.sub(r"'[^']*'|\([^)]*\)", "…", reason)


def report(title: str, result: Result) -> Tally:
    print(f"\n{title}\n\n{HEADER}")
    total = Tally()
    for name, tally in result.tallies.items():
        print(tally.row(name))
        total.add(tally)
    print(total.row("**overall**"))
    missed = total.cuts - total.caught
    boundary_missed = total.boundary - total.boundary_caught
    print(
        f"\nmissed {missed} of {total.cuts} cuts: {boundary_missed} at a boundary, "
        f"{total.missed_opening} within the first three words (read as a short answer), "
        f"{missed - boundary_missed - total.missed_opening} others"
    )
    return total


def timing(seed: int, per_form: int) -> None:
    samples = [s for s in build(seed, per_form) if s.form != "short"]
    sizes = sorted(len(s.text) for s in samples)
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for sample in samples:
            detect(sample.text, "stop", json_mode=sample.json_mode)
        runs.append((time.perf_counter() - start) / len(samples))
    big = "The quick brown fox jumps over the lazy dog. " * 23_000 + "and then"
    start = time.perf_counter()
    detect(big, "stop")
    one_mb = time.perf_counter() - start
    print(
        f"\nspeed: {min(runs) * 1e6:.1f} us per complete answer, best of 5 passes (median answer "
        f"{statistics.median(sizes):.0f} characters, largest {sizes[-1]}); "
        f"a 1 MB answer: {one_mb * 1e3:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--dev-seed", type=int, default=1)
    parser.add_argument("--test-seed", type=int, default=2)
    parser.add_argument("--per-form", type=int, default=150, help="complete answers per form and split")
    parser.add_argument(
        "--misses", type=int, default=0, help="print this many missed cuts and false positives"
    )
    parser.add_argument("--files", nargs="+", help="judge these text files (and a cut copy of each) instead")
    args = parser.parse_args()
    if args.files:
        result = evaluate(args.test_seed, 0, "token", args.files)
        report(f"## {len(args.files)} files, each complete and cut once at a random token boundary", result)
        if args.misses:
            print("\nfalse positives:", *result.false_positives[: args.misses], sep="\n  ")
            print("\nmissed (not at a boundary):", *result.missed[: args.misses], sep="\n  ")
        return
    print(
        "compl = complete answers (the false-positive base), cuts = truncated copies (one per answer);\n"
        "precision and recall count every cut; FPR = share of complete answers flagged;\n"
        "bound. = share of cuts that end at a sentence end or a line end; recall-in = recall on the others."
    )
    for name, seed, by in (
        ("dev split", args.dev_seed, "token"),
        ("test split (held out)", args.test_seed, "token"),
        ("test split, cuts at random characters", args.test_seed, "char"),
    ):
        result = evaluate(seed, args.per_form, by)
        report(f"## {name}: seed {seed}, cuts at random {by} boundaries", result)
        if args.misses:
            print("\nfalse positives:", *result.false_positives[: args.misses], sep="\n  ")
            print("\nmissed (not at a boundary):", *result.missed[: args.misses], sep="\n  ")
        if name.startswith("test split (held"):
            print("\nheuristics that fired (test split): on cut copies / on complete answers")
            for reason in sorted(
                {*result.fired_cut, *result.fired_complete}, key=lambda r: -result.fired_cut[r]
            ):
                print(f"  {result.fired_cut[reason]:>5} / {result.fired_complete[reason]:>3}  {reason}")
    timing(args.test_seed, args.per_form)


if __name__ == "__main__":
    main()
