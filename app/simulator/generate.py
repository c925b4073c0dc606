"""A seeded synthetic scenario shaped like the real simulator's.

The real scenario (about 26,000 actions over 200 users) is not in this
repository, and replaying it takes minutes; a generated one can be as small or
as large as a test or a benchmark needs, is the same for the same seed, and
leans on the things that break implementations:

- the real mix: about 44% tweets, 38% follows, 18% unfollows, plus one
  registration per user (about 1% at the real scale);
- every user registered before they act or are followed, the first two at the
  very start and the rest spread over the first half, as the real one does;
- usernames with spaces ("Roger Histand"), and a share of awkward ones:
  non-ASCII, right-to-left, decomposed accents, emoji, quotes, ``&`` and
  ``+``, a slash, a no-break space twin and a lower-case twin of another
  user, a 64-character one (the documented maximum);
- passwords full of quotes and backslashes;
- non-ASCII text in a fifth of the tweets (emoji, RTL scripts, combining
  marks, quotes, backslashes, ``<b>``, Unicode line separators), and now and
  then a tweet of exactly the 1,000-character limit;
- many unfollows of users not followed, and follows of users already followed.

Every action it produces is valid and expected to succeed (204), and no field
holds a tab or a line break, so its files mean the same to the reference
simulator as to ``app.simulator.scenario``. Run it as
``python -m app.simulator.generate --users 60 --actions 3000 --seed 1 -o FILE``.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from pathlib import Path

from app.simulator.scenario import Action, format_scenario
from app.validation import MESSAGE_MAX

TWEET_SHARE = 0.44
FOLLOW_SHARE = 0.38
UNFOLLOW_SHARE = 0.18
NON_ASCII_TWEET_SHARE = 0.2
LONG_TWEET_SHARE = 0.005
REFOLLOW_SHARE = 0.12  # follows aimed at someone the user already follows
REAL_UNFOLLOW_SHARE = 0.45  # unfollows aimed at someone actually followed; the rest are no-ops
START_MS = 1_700_000_000_000  # fixed, not "now": the same seed gives the same file

FIRST_NAMES = (
    "Roger", "Mary", "Jacqualine", "Octavio", "Johnnie", "Ayesha", "Kenya", "Rolf", "Leora",
    "Malcolm", "Chantelle", "Desmond", "Ingrid", "Wilbur", "Priya", "Tobias", "Marisol",
    "Dwight", "Fenna", "Gustavo", "Harriet", "Ibrahim", "Junko", "Kasper", "Lucinda",
)  # fmt: skip
LAST_NAMES = (
    "Histand", "Brinker", "Mcclam", "Lamkin", "Gotcher", "Maldonado", "Seckman", "Quist",
    "Ruane", "Okafor", "Villanueva", "Halvorsen", "Pettigrew", "Nakashima", "Abernathy",
    "Delacroix", "Ferreira", "Grimsby", "Hollister", "Kowalski", "Lindqvist", "Moreau",
)  # fmt: skip

# Awkward usernames, worked in between the ordinary ones. None has a tab, a line
# break, "?", "#" or "%" (the reference simulator does not URL-encode those).
SPECIAL_NAMES = (
    "Roger\u00a0Histand",  # a no-break space: a different user from "Roger Histand"
    "Jürgen Müller",
    "AC/DC Fan",
    "محمد الأحمد",
    "Zoe\u0308 Ashby",  # decomposed e + combining diaeresis: must not be normalised
    "Tom & Jerry+Co",
    "roger histand",  # a lower-case twin: usernames are case-sensitive
    'Anne-Marie "Annie" Dubois',
    "Back\\Slash Bob",
    "דוד לוי",
    "Hubert Blaine Wolfeschlegelsteinhausenbergerdorff, Elder of Ulm.",  # exactly 64
    "Ren 🐍 Nakamura",
    "李小龙",
    "Siobhán O'Neill",
    "Ольга Петрова",
    "Åsa Ødegård",
)
SPECIAL_EVERY = 4  # one user in four gets an awkward name while they last

WORDS = (
    "the", "a", "simulator", "is", "replaying", "my", "timeline", "and", "I", "love", "it",
    "coffee", "deploy", "friday", "rollback", "again", "monitoring", "works", "why", "does",
    "postgres", "never", "sleep", "tonight", "we", "ship", "new", "dashboards", "alert",
    "fired", "at", "3am", "but", "everything", "is", "fine", "hello", "world", "today",
    "learned", "about", "latency", "percentiles", "from", "logs", "follow", "me", "for",
    "more", "devops", "memes",
)  # fmt: skip
NON_ASCII_FRAGMENTS = (
    "😀", "🎉🎉", "👩‍👩‍👧‍👦", "🇩🇰", "🐍", "עברית בתוך טקסט", "مرحبا بالعالم",
    "中文字符", "Ελληνικά", "ñandú", "cafe\u0301", "\u202eevil override\u202c",
    "line\u2028separator", "next\u0085line", "no\u00a0break", "zero\u200bwidth", "€5 «quoted»",
)  # fmt: skip
TRICKY_ASCII_FRAGMENTS = (
    "<b>bold</b>", "<script>alert('x')</script>", '"double quotes"', "'single quotes'",
    "back\\slash", "C:\\path\\to\\file", "\\n is not a newline", "&amp; &lt;tag&gt;",
    "form\x0cfeed", '{"json": [1, 2]}', "50% off", "#hashtag ?query", "  two  spaces  ",
)  # fmt: skip
TRICKY_ASCII_SHARE = 0.15
QUOTES_AND_BACKSLASHES = "\"'\\"
PW_ALPHABET = (  # the rest of what passwords are drawn from
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    "!@#$%^&*()-_=+[]{};:,.<>/?`~ "
    "øæå€§🔑"
)
QUOTE_SHARE = 0.35  # of a password's characters


def make_usernames(rng: random.Random, count: int) -> list[str]:
    """``count`` distinct names: "First Last" mostly, an awkward one every fourth."""
    names: list[str] = ["Roger Histand"] if count else []
    seen = set(names)
    specials = iter(SPECIAL_NAMES)
    while len(names) < count:
        special = next(specials, None) if len(names) % SPECIAL_EVERY == SPECIAL_EVERY - 1 else None
        if special is not None:
            name = special
        else:
            base = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
            name, suffix = base, 2
            while name in seen:  # a common name twice gets a number, as sites do
                name, suffix = f"{base} {suffix}", suffix + 1
        seen.add(name)
        names.append(name)
    return names


def make_password(rng: random.Random) -> str:
    """6 to 24 characters, about a third of them quotes and backslashes."""
    return "".join(
        rng.choice(QUOTES_AND_BACKSLASHES if rng.random() < QUOTE_SHARE else PW_ALPHABET)
        for _ in range(rng.randint(6, 24))
    )


def make_email(rng: random.Random, username: str) -> str:
    local = username.lower().replace(" ", ".").replace("\u00a0", "_")
    return f"{local}{rng.randint(1, 99)}@{rng.choice(('example.com', 'mail.dk', 'exämple.org'))}"


def make_tweet(rng: random.Random) -> str:
    """A message of 1 to 1,000 characters; non-ASCII in a fifth of them."""
    words = [rng.choice(WORDS) for _ in range(rng.randint(2, 25))]
    if rng.random() < NON_ASCII_TWEET_SHARE:
        for _ in range(rng.randint(1, 3)):
            words.insert(rng.randint(0, len(words)), rng.choice(NON_ASCII_FRAGMENTS))
    if rng.random() < TRICKY_ASCII_SHARE:
        words.insert(rng.randint(0, len(words)), rng.choice(TRICKY_ASCII_FRAGMENTS))
    text = " ".join(words)
    text = text[0].upper() + text[1:] + rng.choice(("", ".", "!", "?", " :)", "..."))
    if rng.random() < LONG_TWEET_SHARE:
        text = (text + " ") * (MESSAGE_MAX // (len(text) + 1) + 1)
        text = text[: MESSAGE_MAX - 1] + "!"  # exactly the limit; never ends in a space
    return text


def generate(users: int = 60, actions: int = 3000, seed: int = 0) -> list[Action]:
    """``actions`` actions (``users`` of them registrations), ids 1 to ``actions``.

    The same arguments give the same scenario, on any machine and Python 3.11+
    (``random.Random`` with an integer seed is stable across versions).
    """
    if users < 2:
        raise ValueError("a scenario needs at least 2 users (follows need someone to follow)")
    if actions < users:
        raise ValueError(f"{actions} actions cannot hold {users} registrations")
    rng = random.Random(seed)
    names = make_usernames(rng, users)
    activity = {name: rng.uniform(0.2, 3.0) for name in names}  # some users post a lot more
    # Registration slots: the first two at once, the others spread over the first half.
    horizon = max(users, actions // 2)
    register_at = {0, 1, *rng.sample(range(2, horizon), users - 2)}

    registered: list[str] = []
    follows: dict[str, set[str]] = {}
    result: list[Action] = []
    timestamp = START_MS
    for index in range(actions):
        action_id = index + 1
        gap = int(rng.expovariate(1 / 1500))
        timestamp += gap
        if index in register_at:
            name = names[len(registered)]
            registered.append(name)
            follows[name] = set()
            result.append(
                Action.register(
                    action_id, name, make_email(rng, name), make_password(rng), gap, timestamp
                )
            )
            continue
        actor = rng.choices(registered, weights=[activity[n] for n in registered])[0]
        others = [n for n in registered if n != actor]
        command = rng.choices(
            ("tweet", "follow", "unfollow"), weights=(TWEET_SHARE, FOLLOW_SHARE, UNFOLLOW_SHARE)
        )[0]
        if command == "tweet":
            result.append(Action.tweet(action_id, actor, make_tweet(rng), gap, timestamp))
        elif command == "follow":
            followed = follows[actor]
            if followed and rng.random() < REFOLLOW_SHARE:
                other = rng.choice(sorted(followed))
            else:
                other = rng.choice(others)
            followed.add(other)
            result.append(Action.follow(action_id, actor, other, gap, timestamp))
        else:
            followed = follows[actor]
            if followed and rng.random() < REAL_UNFOLLOW_SHARE:
                other = rng.choice(sorted(followed))
            else:
                other = rng.choice(others)
            followed.discard(other)
            result.append(Action.unfollow(action_id, actor, other, gap, timestamp))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.simulator.generate",
        description="Write a seeded synthetic simulator scenario (tab-separated, UTF-8).",
    )
    parser.add_argument("--users", type=int, default=200, help="users (default 200)")
    parser.add_argument("--actions", type=int, default=26_000, help="actions (default 26000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("-o", "--output", type=Path, help="file to write (default stdout)")
    args = parser.parse_args(argv)
    try:
        text = format_scenario(generate(args.users, args.actions, args.seed))
    except ValueError as exc:
        parser.error(str(exc))
    if args.output is None:
        sys.stdout.buffer.write(text.encode("utf-8"))
    else:
        args.output.write_text(text, encoding="utf-8", newline="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
