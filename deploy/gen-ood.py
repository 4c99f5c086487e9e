#!/usr/bin/env python3
"""Out-of-domain utterances for open-set calibration: what a voice assistant
hears that is no catalog request at all (device commands, questions,
chit-chat).  Sentences come from templates with slot words, drawn by a seeded
generator, so the lists are reproducible:

    deploy/gen-ood.py --seed 1 --count 3000 > phonetics/models/data/ood-train-v1.txt
    deploy/gen-ood.py --seed 2 --count 400 --exclude phonetics/models/data/ood-train-v1.txt \
        > phonetics/models/data/ood-test-v1.txt

--exclude drops every sentence of the given files (one per line), so the
test list shares no sentence with the training list.  The three examples of
issue 11 are kept out of every list made without --with-issue-examples and
are the first lines of the test list made with it.
"""
import argparse
import random
import sys

ISSUE_EXAMPLES = ["turn off the lights in the kitchen", "navigate to the nearest gas station",
                  "turn the volume up"]

ROOMS = ["kitchen", "living room", "bedroom", "bathroom", "hallway", "garage", "office",
         "basement", "dining room", "kids room", "porch", "attic", "laundry room", "study"]
DEVICES = ["lights", "lamp", "fan", "heater", "air conditioner", "tv", "radio", "speaker",
           "dishwasher", "washing machine", "coffee maker", "oven", "kettle", "vacuum",
           "sprinkler", "thermostat", "ceiling light", "porch light", "alarm system", "humidifier"]
PLACES = ["gas station", "pharmacy", "grocery store", "coffee shop", "airport", "train station",
          "hospital", "post office", "bank", "hardware store", "parking lot", "pizza place",
          "bakery", "gym", "library", "school", "office", "mall", "car wash", "bus stop"]
PEOPLE = ["mom", "dad", "john", "sarah", "my wife", "my husband", "grandma", "the office",
          "my sister", "my brother", "doctor miller", "peter", "anna", "the babysitter", "alex"]
CITIES = ["boston", "chicago", "denver", "seattle", "london", "paris", "berlin", "tokyo",
          "miami", "dallas", "toronto", "madrid", "rome", "sydney", "austin", "phoenix"]
TIMES = ["seven", "six thirty", "eight fifteen", "noon", "midnight", "nine", "five forty five",
         "ten", "seven am", "six pm", "tomorrow morning", "half past eight"]
DURATIONS = ["five minutes", "ten minutes", "twenty minutes", "an hour", "half an hour",
             "thirty seconds", "two hours", "forty five minutes", "three minutes"]
ITEMS = ["milk", "eggs", "bread", "butter", "apples", "coffee", "toilet paper", "batteries",
         "dog food", "rice", "onions", "chicken", "paper towels", "cheese", "orange juice"]
NUMBERS = ["three", "five", "ten", "twenty", "fifty", "one hundred", "seventeen", "forty two",
           "twelve", "eighty", "two thousand", "nine"]
FOODS = ["pasta", "pancakes", "chili", "banana bread", "fried rice", "lasagna", "tacos",
         "chicken soup", "a cheesecake", "guacamole", "meatballs", "a smoothie"]
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
            "today", "tonight", "tomorrow", "this weekend", "next week"]
UNITS = [("cups", "milliliters"), ("miles", "kilometers"), ("pounds", "kilograms"),
         ("inches", "centimeters"), ("ounces", "grams"), ("fahrenheit", "celsius")]
ANIMALS = ["a cat", "a dog", "an elephant", "a whale", "a parrot", "a horse", "a bee", "a shark"]
TOPICS = ["the weather", "traffic", "the news", "my calendar", "my day", "the stock market",
          "the score", "my commute", "my flight", "my package"]

TEMPLATES = [
    "turn {onoff} the {device}", "turn {onoff} the {device} in the {room}",
    "switch {onoff} the {room} {device}", "set the thermostat to {number} degrees",
    "dim the lights in the {room}", "make it {warmer} in the {room}",
    "is the {device} in the {room} on", "lock the front door", "close the garage door",
    "turn the volume {updown}", "volume {updown}", "set the volume to {number}", "mute",
    "unmute", "pause", "stop", "resume", "skip this", "go back", "next", "previous",
    "louder please", "a bit quieter", "stop the music", "what time is it",
    "set an alarm for {time}", "wake me up at {time}", "cancel my {time} alarm",
    "set a timer for {duration}", "how much time is left on the timer", "cancel the timer",
    "remind me to {chore} {weekday}", "navigate to the nearest {place}",
    "how do i get to the {place}", "how far is the {place}", "find a {place} near me",
    "directions to {city}", "how long is the drive to {city}", "is there traffic on the way home",
    "call {person}", "text {person} that i am running late", "send a message to {person}",
    "read my messages", "what is the weather like {weekday}", "will it rain {weekday}",
    "what is the weather in {city}", "do i need an umbrella {weekday}",
    "how hot will it be {weekday}", "add {item} to my shopping list",
    "what is on my shopping list", "remove {item} from the list", "order more {item}",
    "how many {unit_a} in a {unit_b_single}", "convert {number} {unit_a} to {unit_b}",
    "what is {number} times {number2}", "what is {number} plus {number2}",
    "how do you make {food}", "give me a recipe for {food}", "what sound does {animal} make",
    "how old is the earth", "how tall is mount everest", "who is the president",
    "what is the capital of {country}", "spell {word}", "what does {word} mean",
    "tell me a joke", "tell me something funny", "how are you", "good morning", "good night",
    "thank you", "thanks a lot", "never mind", "hello", "hi there", "are you listening",
    "what can you do", "who made you", "i love you", "you are funny", "i am bored",
    "what is your name", "sing me a song", "tell me a story", "flip a coin", "roll a die",
    "what day is it", "what is the date {weekday}", "when is {holiday}",
    "how many days until {holiday}", "what is on my calendar {weekday}",
    "add a meeting with {person} {weekday}", "brief me on {topic}", "what is new with {topic}",
    "how is {topic} looking", "open the {app} app", "take a picture", "take a note",
    "start the {device}", "charge my phone", "where is my phone", "find my keys",
    "how much battery is left", "connect to bluetooth", "turn on wifi", "restart",
    "update the software", "what was that", "say that again", "speak slower",
    "change your voice", "i did not ask for that", "that is wrong", "yes", "no", "maybe later",
    "ok", "sure go ahead", "can you help me with {chore}", "how do i {chore}",
    "i need to {chore} {weekday}", "did i {chore} {weekday}",
]
FILL = {
    "onoff": ["on", "off"], "device": DEVICES, "room": ROOMS, "number": NUMBERS,
    "number2": NUMBERS, "warmer": ["warmer", "cooler", "brighter", "darker"],
    "updown": ["up", "down"], "time": TIMES, "duration": DURATIONS,
    "chore": ["take out the trash", "water the plants", "pay the rent", "walk the dog",
              "call the dentist", "pick up the kids", "buy groceries", "do the laundry",
              "feed the cat", "clean the kitchen", "renew my passport", "fix the sink"],
    "weekday": WEEKDAYS, "place": PLACES, "city": CITIES, "person": PEOPLE, "item": ITEMS,
    "food": FOODS, "animal": ANIMALS, "topic": TOPICS,
    "country": ["france", "japan", "brazil", "canada", "kenya", "norway", "peru", "egypt"],
    "word": ["necessary", "rhythm", "definitely", "conscience", "ubiquitous", "serendipity"],
    "holiday": ["christmas", "thanksgiving", "easter", "halloween", "new years", "my birthday"],
    "app": ["camera", "calculator", "maps", "clock", "settings", "weather", "notes"],
}


# People wrap the same request in many ways; the wrappers make thousands of
# distinct sentences from the templates.
PREFIXES = ["", "", "", "", "please ", "can you ", "could you ", "hey ", "ok ", "um ", "so ",
            "alright ", "quick question ", "excuse me "]
SUFFIXES = ["", "", "", "", " please", " now", " right now", " for me", " thanks", " again"]


def fill(tpl, rnd):
    out = rnd.choice(PREFIXES) + tpl + rnd.choice(SUFFIXES)
    if "{unit_a}" in out:
        a, b = rnd.choice(UNITS)
        out = out.replace("{unit_a}", a).replace("{unit_b_single}", b.rstrip("s"))
        out = out.replace("{unit_b}", b)
    while "{" in out:
        s = out.index("{")
        e = out.index("}", s)
        out = out[:s] + rnd.choice(FILL[out[s + 1:e]]) + out[e + 1:]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--exclude", action="append", default=[])
    ap.add_argument("--with-issue-examples", action="store_true")
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    seen = set(ISSUE_EXAMPLES)
    for path in a.exclude:
        with open(path) as f:
            seen.update(line.strip() for line in f)
    out = list(ISSUE_EXAMPLES) if a.with_issue_examples else []
    tries = 0
    while len(out) < a.count and tries < 200 * a.count:
        tries += 1
        s = fill(rnd.choice(TEMPLATES), rnd)
        if s not in seen:
            seen.add(s)
            out.append(s)
    if len(out) < a.count:
        sys.exit(f"gen-ood: only {len(out)} distinct sentences of {a.count}")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
