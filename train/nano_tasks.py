"""Muse Nano's synthetic conversations: shapes, speech, text, tools and their
mixtures, rendered exactly as models/templates/muse-nano.jinja renders them.

A sample is a dict: messages (OpenAI-shaped, media parts {"type": "image"|"audio",
...} carrying the pixels / samples), tools (or None), task (its category) and
answer fields the evaluation checks.
"""
import json
from concurrent.futures import ProcessPoolExecutor

import numpy as np

import nano_media as nm

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
COMMANDS = ["turn on the light", "turn off the light", "play some music", "stop the music",
            "open the door", "close the window", "what time is it", "set a timer",
            "call my mother", "good morning"]
OPS = {"plus": lambda a, b: a + b, "minus": lambda a, b: a - b, "times": lambda a, b: a * b}
CITIES = [
    "Paris", "London", "Tokyo", "Berlin", "Madrid", "Rome", "Cairo", "Lagos", "Nairobi", "Lima",
    "Sydney", "Toronto", "Chicago", "Boston", "Denver", "Seattle", "Dublin", "Oslo", "Vienna",
    "Prague", "Warsaw", "Athens", "Lisbon", "Moscow", "Istanbul", "Dubai", "Delhi", "Mumbai",
    "Beijing", "Shanghai", "Seoul", "Bangkok", "Hanoi", "Manila", "Jakarta", "Singapore",
    "Auckland", "Santiago", "Bogota", "Havana", "Montreal", "Vancouver", "Houston", "Phoenix",
    "Miami", "Atlanta", "Dallas", "Austin", "Helsinki", "Stockholm", "Copenhagen", "Brussels",
    "Amsterdam", "Zurich", "Geneva", "Munich", "Hamburg", "Milan", "Naples", "Venice", "Florence",
    "Barcelona", "Valencia", "Seville", "Porto", "Marseille", "Lyon", "Nice", "Edinburgh",
    "Glasgow", "Manchester", "Liverpool", "Bristol", "Cardiff", "Belfast", "Reykjavik", "Riga",
    "Tallinn", "Vilnius", "Kyiv", "Minsk", "Budapest", "Bucharest", "Sofia", "Belgrade", "Zagreb",
    "Ljubljana", "Tunis", "Algiers", "Casablanca", "Accra", "Dakar", "Addis Ababa", "Kampala",
    "Johannesburg", "Cape Town", "Karachi", "Lahore", "Dhaka", "Kathmandu", "Colombo", "Osaka",
    "Kyoto", "Taipei", "Hong Kong", "New York", "Los Angeles", "San Francisco", "Mexico City",
    "Buenos Aires", "Rio de Janeiro", "Sao Paulo", "Quito", "Caracas", "Panama City", "Kuala Lumpur",
    "Abu Dhabi", "Tel Aviv", "Salt Lake City", "New Orleans", "Las Vegas",
]
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
OTHER_TOOLS = [
    {"type": "function", "function": {"name": "get_time", "description": "Current time in a city",
                                      "parameters": {"type": "object", "properties": {
                                          "city": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "set_timer", "description": "Start a timer",
                                      "parameters": {"type": "object", "properties": {
                                          "minutes": {"type": "integer"}}}}},
]
CONDITIONS = ["sunny", "cloudy", "rainy", "windy", "snowy", "foggy"]

# ------------------------------------------------------------ speech pool

def utterances():
    """(kind, spoken text, value) for every clip the speech tasks use."""
    out = [("digit", str(d), d) for d in range(10)]
    out += [("number", str(n), n) for n in range(10, 100)]
    out += [("command", c, c) for c in COMMANDS]
    out += [("arith", f"{a} {op} {b}", (a, op, b)) for a in range(10) for op in OPS for b in range(10)]
    return out


def _speak_job(args):
    text, seed = args
    return nm.speak(text, np.random.default_rng(seed))


def build_speech_pool(seed, copies, workers=2):
    """{kind: [(value, samples)]} with `copies[kind]` renditions of each utterance,
    each with its own random voice, variant, speed and pitch."""
    jobs, meta = [], []
    rng = np.random.default_rng(seed)
    for kind, text, value in utterances():
        for _ in range(copies[kind]):
            jobs.append((text, int(rng.integers(1 << 62))))
            meta.append((kind, value))
    with ProcessPoolExecutor(workers) as ex:
        clips = list(ex.map(_speak_job, jobs, chunksize=32))
    pool = {}
    for (kind, value), pcm in zip(meta, clips):
        pool.setdefault(kind, []).append((value, (pcm * 32767).astype(np.int16)))
    return pool


def pick_clip(pool, kind, rng, value=None):
    items = pool[kind]
    if value is not None:
        items = [it for it in items if it[0] == value]
    v, pcm16 = items[rng.integers(len(items))]
    return v, nm.augment(pcm16.astype(np.float32) / 32767, rng)


# ------------------------------------------------------------ parts

def image_part(img):
    return {"type": "image", "pixels": img}


def audio_part(samples):
    q, _ = nm.to_pcm16(samples)
    return {"type": "audio", "pcm16": q}


def text_part(t):
    return {"type": "text", "text": t}


def user(rng, media, question):
    """A user turn: media parts and the question, media first or (sometimes) last."""
    parts = list(media)
    if question:
        if rng.random() < 0.8:
            parts.append(text_part(question))
        else:
            parts.insert(0, text_part(question))
    return {"role": "user", "content": parts}


def choice(rng, xs):
    return xs[rng.integers(len(xs))]


def article(color):
    return "An" if color == "orange" else "A"


def describe(p, cap=True):
    a = article(p["color"]) if cap else article(p["color"]).lower()
    return f"{a} {p['color']} {p['shape']}"


# ------------------------------------------------------------ tasks

def task_name(rng, pool):
    img, shapes = nm.draw_shapes(rng, 1)
    s = shapes[0]
    kind = rng.integers(3)
    if kind == 0:
        q = choice(rng, ["What is in the picture?", "Describe the image.", "What do you see?",
                         "What is this?", "Name the shape and its color.", ""])
        a = describe(s) + "."
    elif kind == 1:
        q = choice(rng, ["What color is the shape?", "What colour is it?", "Which color is this?"])
        a = s["color"].capitalize() + "."
    else:
        q = choice(rng, ["What shape is this?", "Which shape is in the picture?", "What shape is it?"])
        a = f"{article(s['shape'])} {s['shape']}."
    return {"task": "name", "messages": [user(rng, [image_part(img)], q),
                                         {"role": "assistant", "content": a}],
            "color": s["color"], "shape": s["shape"]}


def count_sentence(n):
    return "There is 1 shape." if n == 1 else f"There are {n} shapes."


def task_count(rng, pool):
    n = int(rng.integers(1, 6))
    img, shapes = nm.draw_shapes(rng, n)
    q = choice(rng, ["How many shapes are there?", "How many shapes are in the picture?",
                     "Count the shapes.", "How many objects do you see?"])
    return {"task": "count", "messages": [user(rng, [image_part(img)], q),
                                          {"role": "assistant", "content": count_sentence(n)}],
            "count": n}


def task_side(rng, pool):
    img, shapes = nm.draw_shapes(rng, 2, distinct=True, min_dx=12)
    left, right = shapes
    kind = rng.integers(3)
    if kind == 0:
        q, a = choice(rng, ["Which shape is on the left?", "What is on the left?"]), describe(left)
        a = "The" + a[a.index(" "):] + "."
    elif kind == 1:
        q, a = choice(rng, ["Which shape is on the right?", "What is on the right?"]), describe(right)
        a = "The" + a[a.index(" "):] + "."
    else:
        target = left if rng.random() < 0.5 else right
        q = f"Is the {target['color']} {target['shape']} on the left or on the right?"
        a = "On the left." if target is left else "On the right."
    return {"task": "side", "messages": [user(rng, [image_part(img)], q),
                                         {"role": "assistant", "content": a}],
            "left": left, "right": right}


def task_describe(rng, pool):
    n = int(rng.integers(2, 6))
    img, shapes = nm.draw_shapes(rng, n)
    items = [describe(s, cap=False) for s in shapes]
    a = f"{n} shapes, from left to right: " + ", ".join(items[:-1]) + " and " + items[-1] + "."
    q = choice(rng, ["Describe the image.", "What is in the picture?", "What do you see?"])
    return {"task": "describe", "messages": [user(rng, [image_part(img)], q),
                                             {"role": "assistant", "content": a}], "count": n}


def task_digit(rng, pool):
    d, pcm = pick_clip(pool, "digit", rng)
    kind = rng.integers(3)
    if kind == 0:
        q, a = choice(rng, ["What number did I say?", "Which digit did you hear?",
                            "What number was said?"]), f"{d}."
    elif kind == 1:
        q, a = choice(rng, ["Transcribe the audio.", "What did I say?", "Write down what you hear."]), f"{d}"
    else:
        q, a = "", f"You said {d}."
    return {"task": "digit", "messages": [user(rng, [audio_part(pcm)], q),
                                          {"role": "assistant", "content": a}], "value": d}


def task_number(rng, pool):
    n, pcm = pick_clip(pool, "number", rng)
    q = choice(rng, ["What number did I say?", "Transcribe the audio.", "What did I say?"])
    return {"task": "number", "messages": [user(rng, [audio_part(pcm)], q),
                                           {"role": "assistant", "content": f"{n}."}], "value": n}


def task_command(rng, pool):
    c, pcm = pick_clip(pool, "command", rng)
    q = choice(rng, ["Transcribe the audio.", "What did I say?", ""])
    a = c[0].upper() + c[1:] + ("?" if c.startswith("what") else ".")
    return {"task": "command", "messages": [user(rng, [audio_part(pcm)], q),
                                            {"role": "assistant", "content": a}], "value": c}


def arith_answer(a, op, b):
    return f"{a} {op} {b} is {OPS[op](a, b)}."


def task_spoken_arith(rng, pool):
    (a, op, b), pcm = pick_clip(pool, "arith", rng)
    q = choice(rng, ["What is the answer?", "Solve this.", "Calculate what I said.", ""])
    return {"task": "spoken_arith", "messages": [user(rng, [audio_part(pcm)], q),
                                                 {"role": "assistant", "content": arith_answer(a, op, b)}],
            "value": OPS[op](a, b)}


def task_text_arith(rng, pool):
    a, b = int(rng.integers(10)), int(rng.integers(10))
    op = choice(rng, list(OPS))
    sym = {"plus": "+", "minus": "-", "times": "*"}[op]
    q = choice(rng, [f"What is {a} {op} {b}?", f"{a} {sym} {b} = ?", f"Compute {a} {op} {b}.",
                     f"what is {a} {sym} {b}"])
    return {"task": "text_arith", "messages": [{"role": "user", "content": q},
                                               {"role": "assistant", "content": arith_answer(a, op, b)}],
            "value": OPS[op](a, b)}


CHAT = [
    (["Hello", "Hi", "Hello!", "Hi there", "Hey", "Good morning", "Good evening", "hello"],
     "Hello! How can I help you?"),
    (["Who are you?", "What is your name?", "What are you?", "Introduce yourself."],
     "I am Muse Nano, a small model that understands text, images and speech."),
    (["What can you do?", "How can you help me?", "Help"],
     "I can describe shapes in images, understand spoken numbers and commands, do simple "
     "arithmetic and check the weather with a tool."),
    (["Thank you", "Thanks!", "thanks", "Thank you very much."], "You're welcome!"),
    (["Bye", "Goodbye", "See you later"], "Goodbye!"),
    (["How are you?", "How are you doing?"], "I am fine, thank you!"),
]
FALLBACK_QUESTIONS = ["Write me a poem.", "What is the capital of France?", "Tell me a joke.",
                      "Explain quantum physics.", "Who won the game yesterday?",
                      "Translate this into German.", "What should I cook tonight?"]
FALLBACK = "Sorry, I can only help with shapes, spoken numbers, simple arithmetic and the weather."


def task_chat(rng, pool):
    if rng.random() < 0.2:
        q, a = choice(rng, FALLBACK_QUESTIONS), FALLBACK
    else:
        qs, a = CHAT[rng.integers(len(CHAT))]
        q = choice(rng, qs)
    return {"task": "chat", "messages": [{"role": "user", "content": q},
                                         {"role": "assistant", "content": a}]}


WEATHER_QUESTIONS = ["What's the weather in {}?", "What is the weather like in {}?",
                     "Is it raining in {}?", "How warm is it in {} today?",
                     "Tell me the weather for {}.", "weather in {}", "Do I need an umbrella in {}?"]


def tool_call_text(name, args):
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>"


def task_weather(rng, pool):
    city = choice(rng, CITIES)
    q = choice(rng, WEATHER_QUESTIONS).format(city)
    tools = [WEATHER_TOOL] + [t for t in OTHER_TOOLS if rng.random() < 0.3]
    rng.shuffle(tools)
    r = rng.random()
    if r < 0.12:  # no tool: the model says it cannot look it up
        return {"task": "weather_no_tool", "tools": None, "messages": [
            {"role": "user", "content": q},
            {"role": "assistant", "content": "I cannot check the weather without a weather tool."}]}
    call = {"role": "assistant", "content": None, "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": city}}}]}
    if r < 0.3:  # the tool answered: report it
        temp, cond = int(rng.integers(-10, 36)), choice(rng, CONDITIONS)
        result = json.dumps({"city": city, "temperature": temp, "condition": cond})
        return {"task": "weather_result", "tools": tools, "messages": [
            {"role": "user", "content": q}, call, {"role": "tool", "content": result},
            {"role": "assistant", "content": f"It is {cond} and {temp} degrees in {city}."}]}
    return {"task": "weather", "tools": tools, "messages": [{"role": "user", "content": q}, call],
            "city": city}


def task_tools_chat(rng, pool):
    """Tools offered but not needed: answer normally."""
    s = task_chat(rng, pool) if rng.random() < 0.5 else task_text_arith(rng, pool)
    s["tools"] = [WEATHER_TOOL]
    return s


def task_mixed(rng, pool):
    n = int(rng.integers(1, 6))
    img, shapes = nm.draw_shapes(rng, n)
    d, pcm = pick_clip(pool, "digit", rng)
    media = [image_part(img), audio_part(pcm)]
    if rng.random() < 0.3:
        media.reverse()
    if n == 1 and rng.random() < 0.5:
        q = "What color is the shape, and what number did I say?"
        a = f"The shape is {shapes[0]['color']}, and you said {d}."
    else:
        q = choice(rng, ["How many shapes are in the picture, and what number did I say?",
                         "Count the shapes and tell me the number I said."])
        a = (f"There is 1 shape" if n == 1 else f"There are {n} shapes") + f", and you said {d}."
    return {"task": "mixed", "messages": [user(rng, media, q), {"role": "assistant", "content": a}],
            "count": n, "value": d, "color": shapes[0]["color"]}


TASKS = [  # (generator, weight)
    (task_name, 14), (task_count, 12), (task_side, 7), (task_describe, 4),
    (task_digit, 12), (task_number, 5), (task_command, 4), (task_spoken_arith, 14),
    (task_text_arith, 5), (task_chat, 4), (task_weather, 10), (task_tools_chat, 2),
    (task_mixed, 7),
]


# The second training stage (train/README.md): images are the slowest skill to learn,
# so they get most of the steps while the rest is kept fresh.
IMAGE_TASKS = [
    (task_name, 30), (task_count, 25), (task_side, 20), (task_describe, 5),
    (task_digit, 3), (task_number, 1), (task_command, 1), (task_spoken_arith, 3),
    (task_text_arith, 1), (task_chat, 1), (task_weather, 2), (task_tools_chat, 0.5),
    (task_mixed, 8),
]
MIXES = {"default": TASKS, "images": IMAGE_TASKS}


def sample(rng, pool, tasks=TASKS):
    fns, w = zip(*tasks)
    p = np.array(w, dtype=np.float64) / sum(w)
    s = fns[rng.choice(len(fns), p=p)](rng, pool)
    s.setdefault("tools", None)
    if rng.random() < 0.1 and s["messages"][0]["role"] == "user":
        s["messages"].insert(0, {"role": "system", "content": choice(
            rng, ["You are a helpful assistant.", "You are Muse Nano.", "Answer briefly."])})
    return s


# ------------------------------------------------------------ rendering

def render(tok, s, add_generation_prompt=False, upto=None):
    """Token ids, per-token loss mask (assistant turns) and media rows in order.
    `upto`: render only messages[:upto] (then a generation prompt if asked)."""
    ids, mask, media = [], [], []

    def text(t, learn=False):
        e = tok.encode(t)
        ids.extend(e)
        mask.extend([learn] * len(e))

    if s.get("tools"):
        sig = []
        for t in s["tools"]:
            f = t["function"]
            sig.append(f"{f['name']}({', '.join(f.get('parameters', {}).get('properties', {}))})")
        text("<|im_start|>system\nTools: " + " ".join(sig) + "<|im_end|>\n")
    msgs = s["messages"] if upto is None else s["messages"][:upto]
    for m in msgs:
        text("<|im_start|>" + m["role"] + "\n")
        learn = m["role"] == "assistant"
        c = m.get("content")
        if isinstance(c, str):
            text(c, learn)
        elif c is not None:
            for p in c:
                if p["type"] == "text":
                    text(p["text"])
                elif p["type"] == "image":
                    rows = nm.image_patches(p["pixels"])
                    text("<|image_start|>")
                    media.append(("image", len(ids), rows))
                    ids.extend([tok.id("<|image|>")] * len(rows))
                    mask.extend([False] * len(rows))
                    text("<|image_end|>")
                else:
                    rows = nm.audio_rows(p["pcm16"].astype(np.float32) / 32768)
                    text("<|audio_start|>")
                    media.append(("audio", len(ids), rows))
                    ids.extend([tok.id("<|audio|>")] * len(rows))
                    mask.extend([False] * len(rows))
                    text("<|audio_end|>")
        for tc in m.get("tool_calls") or []:
            f = tc["function"]
            text(tool_call_text(f["name"], f["arguments"]), learn)
        text("<|im_end|>", learn)
        text("\n")
    if add_generation_prompt:
        text("<|im_start|>assistant\n")
    return ids, mask, media


def corpus_texts(rng, pool, n):
    """Plain text of n rendered samples (media markers dropped) for BPE training."""
    out = []
    for _ in range(n):
        s = sample(rng, pool)
        for m in s["messages"]:
            c = m.get("content")
            if isinstance(c, str):
                out.append(c)
            elif c:
                out += [p["text"] for p in c if p["type"] == "text"]
            for tc in m.get("tool_calls") or []:
                out.append(json.dumps({"name": tc["function"]["name"],
                                       "arguments": tc["function"]["arguments"]}))
        out.append("Tools: get_weather(city) get_time(city) set_timer(minutes)\nuser\nassistant\ntool")
    return out
