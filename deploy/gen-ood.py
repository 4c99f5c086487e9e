#!/usr/bin/env python3
"""Out-of-domain utterances for open-set calibration: what a voice assistant
hears that is no catalog request at all (device commands, questions,
chit-chat).  Sentences come from templates with slot words, drawn by a seeded
generator, so the lists are reproducible:

    deploy/gen-ood.py --seed 1 --count 3000 > phonetics/models/data/ood-train-v1.txt
    deploy/gen-ood.py --seed 2 --count 400 --exclude phonetics/models/data/ood-train-v1.txt \
        > phonetics/models/data/ood-test-v1.txt
    deploy/gen-ood.py --seed 5 --count 3000 --set c --exclude phonetics/models/data/ood-test-v1.txt \
        --exclude phonetics/models/data/ood-test-v2.txt > phonetics/models/data/ood-train-v2.txt

(ood-test-v2.txt is no output of this script: 400 utterances written by
hand, in other words than these templates', to measure on.)

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
# A second, wider set (--set v2): other intents and other ways of asking,
# for the command table (deploy/fit-command.sh), whose words must reach
# past the first set's phrasings.  Added after the first set so that its
# seeded lists stay as they were.
MORE_TEMPLATES = [
    "i want to {chore}", "i'd like to know {question}", "do you know {question}",
    "tell me {question}", "i was wondering {question}", "quick question {question}",
    "any idea {question}", "{question}", "{question} please",
    "how many calories are in {food}", "is {food} healthy", "what goes well with {food}",
    "how long do i boil {food2}", "what temperature do i bake {food2} at",
    "what is the score of the {team} game", "did the {team} win {weekday}",
    "when do the {team} play next", "who won the game {weekday}",
    "what is the price of {stock} stock", "how is the market doing {weekday}",
    "transfer {number} dollars to {person}", "what is my account balance",
    "pay my {bill} bill", "when is my {bill} bill due",
    "book a table for {number} at {time}", "order a pizza", "order {food} for delivery",
    "when does the {place} close", "is the {place} open {weekday}",
    "what are the opening hours of the {place}", "call the nearest {place}",
    "how many steps did i take {weekday}", "start a {duration} workout",
    "log my weight", "remind me to take my {medicine} at {time}",
    "i have a headache", "i can't sleep", "i feel sick", "what should i do about {symptom}",
    "lock the car", "start the car", "how much gas is left", "find parking near {city}",
    "roll down the windows", "set the cruise control", "turn on the seat heater",
    "book a flight to {city}", "what is the time in {city}", "check in for my flight",
    "how do you say {word2} in {language}", "translate {word2} into {language}",
    "what does the fox say", "why is the sky blue", "how far away is the moon",
    "how many legs does {animal} have", "do {animal_pl} sleep", "can {animal_pl} swim",
    "play some {genre} music", "play something {mood}", "play my {playlist} playlist",
    "skip ahead {duration}", "rewind {duration}", "shuffle my music", "repeat this song",
    "who sings this", "what song is this", "turn on the subtitles", "switch to {input}",
    "change the channel", "go to the home screen", "turn it down a little",
    "turn the {device} {onoff} at {time}", "is the back door locked",
    "show me the front door camera", "who is at the door", "arm the security system",
    "set the {room} to {number} percent", "open the blinds", "close the curtains in the {room}",
    "no {correction}", "i said {correction}", "sorry i meant {correction}", "not that one",
    "that's not what i said", "let me try again", "go back to the last one", "cancel that",
    "okay thanks", "that's all", "goodbye", "see you later", "you're welcome",
    "what's up", "how's it going", "what's your favorite color", "do you dream",
    "are you a robot", "how old are you", "where do you live", "tell me about yourself",
    "set my status to busy", "turn on do not disturb", "silence my phone",
    "take a screenshot", "record a voice memo", "read my last email",
    "reply to {person} saying {reply}", "how long until {time}", "what's the date today",
]
# A third set (--set c), kept apart from both: the open-set calibration's
# out-of-domain utterances (ood-train-v2), phrasings the command table never
# saw, so that the calibration learns what its score is worth on new ones.
CALIB_TEMPLATES = [
    "hey can you {verb_c} the {thing_c}", "{verb_c} the {thing_c} {when_c}",
    "please {verb_c} my {thing_c}", "could you {verb_c} the {thing_c} for me",
    "i need you to {verb_c} the {thing_c}", "don't forget to {verb_c} the {thing_c}",
    "is it going to be {weather_c} {weekday}", "will it be {weather_c} in {city}",
    "how {adj_c} is it outside", "what should i wear {weekday}",
    "how many {unit_c} are in a {unit_c2}", "what's {number} divided by {number2}",
    "what's {number} percent of {number2}", "square root of {number}",
    "who is the {role_c} of {country}", "when was {person_c} born", "where was {person_c} from",
    "what did {person_c} invent", "is {person_c} still alive", "how old is {person_c}",
    "what's the fastest {animal_c}", "why do {animal_c}s {verb_animal}",
    "what's happening in {city} {weekday}", "any news about {topic_c}",
    "what's the latest on {topic_c}", "give me the headlines",
    "how do i get rid of {problem_c}", "what's good for {problem_c}",
    "find me a {place_c} that's open now", "where can i buy {item_c}",
    "how much does {item_c} cost", "add {item_c} to my cart", "track my order",
    "where's my delivery", "did my package arrive", "return the {item_c} i ordered",
    "text {person} {message_c}", "tell {person} {message_c}", "ask {person} if {question_c}",
    "video call {person}", "hang up", "answer the phone", "ignore the call",
    "what's on my schedule {weekday}", "move my {time} meeting to {time2}",
    "am i free {weekday} afternoon", "schedule a {event_c} {weekday} at {time}",
    "wake me in {duration}", "snooze for {duration}", "turn off all alarms",
    "how long will it take to walk to the {place_c}", "avoid tolls", "take me home",
    "where am i", "what's the speed limit here", "find a charging station",
    "fast forward", "go back {duration}", "next episode", "turn the captions off",
    "louder", "softer", "make it brighter", "too loud", "i can't hear you",
    "what was the question", "you misunderstood me", "never mind that",
    "good job", "you're awesome", "that was helpful", "are you there",
    "do you like {thing_like}", "what's your favorite {thing_like}", "can you {skill_c}",
    "teach me how to {skill_c}", "help me {skill_c}", "i want to learn {subject_c}",
]
CALIB_FILL = {
    "verb_c": ["open", "close", "check", "lock", "unlock", "start", "stop", "clean", "empty",
               "refill", "charge", "restart", "reset", "update"],
    "thing_c": ["garage", "front gate", "dishwasher", "robot vacuum", "car", "printer", "router",
                "blinds", "sprinklers", "pool pump", "laptop", "doorbell", "mailbox", "fridge"],
    "when_c": ["now", "at noon", "in ten minutes", "before i get home", "tonight", "every morning"],
    "weather_c": ["sunny", "windy", "cold", "foggy", "stormy", "humid", "freezing"],
    "adj_c": ["cold", "hot", "windy", "humid", "bright"],
    "unit_c": ["teaspoons", "feet", "quarts", "seconds", "yards", "pints"],
    "unit_c2": ["tablespoon", "mile", "gallon", "day", "meter", "liter"],
    "role_c": ["president", "prime minister", "king", "queen", "leader", "mayor"],
    "person_c": ["albert einstein", "abraham lincoln", "marie curie", "napoleon", "mozart",
                 "thomas edison", "cleopatra", "isaac newton", "ada lovelace"],
    "animal_c": ["cat", "bird", "dog", "cow", "frog", "bat", "owl"],
    "verb_animal": ["purr", "sing", "bark", "sleep so much", "migrate", "hibernate"],
    "topic_c": ["the election", "the storm", "the economy", "the game", "gas prices",
                "the strike", "interest rates"],
    "problem_c": ["hiccups", "fruit flies", "a cold", "ants in the kitchen", "a stain",
                  "a stiff neck", "bad breath"],
    "place_c": ["pharmacy", "diner", "vet", "dentist", "laundromat", "taco truck", "atm"],
    "item_c": ["light bulbs", "a phone charger", "sunscreen", "printer ink", "a birthday card",
               "shoes", "a new mattress"],
    "message_c": ["i'll be home soon", "dinner's ready", "happy birthday", "where are you",
                  "call me when you can", "i'm outside"],
    "question_c": ["she wants pizza", "he is coming tonight", "they need a ride",
                   "we need milk"],
    "time2": ["three", "four thirty", "noon", "ten am", "two pm"],
    "event_c": ["haircut", "doctor's appointment", "call with the team", "dentist visit",
                "lunch"],
    "thing_like": ["music", "pizza", "sports", "rainy days", "dogs", "summer"],
    "skill_c": ["meditate", "count to ten in french", "tie a tie", "make a budget",
                "fold a paper plane", "change a tire"],
    "subject_c": ["spanish", "guitar", "chess", "coding", "photography"],
}
MORE_FILL = {
    "question": ["what time it is in {city}", "how tall a giraffe is", "who invented the telephone",
                 "how many ounces are in a pound", "when the sun sets {weekday}",
                 "what the traffic is like", "if it will snow {weekday}",
                 "how far it is to {city}", "where the nearest {place} is",
                 "what year it is", "how to {chore}", "who wrote the declaration of independence",
                 "what the speed of light is", "how many people live in {city}"],
    "food2": ["eggs", "potatoes", "rice", "salmon", "a chicken breast", "cookies", "carrots"],
    "team": ["yankees", "lakers", "patriots", "red sox", "warriors", "bears", "dodgers",
             "cowboys", "celtics", "giants"],
    "stock": ["apple", "tesla", "amazon", "google", "microsoft"],
    "bill": ["electric", "phone", "water", "internet", "credit card", "gas"],
    "medicine": ["pills", "vitamins", "medicine", "allergy pill", "insulin"],
    "symptom": ["a sore throat", "a cough", "back pain", "a fever", "a sunburn"],
    "language": ["spanish", "french", "german", "italian", "japanese", "chinese"],
    "word2": ["thank you", "good morning", "where is the bathroom", "how much", "hello"],
    "animal_pl": ["cats", "dogs", "fish", "birds", "horses", "ants", "dolphins"],
    "genre": ["jazz", "rock", "classical", "country", "hip hop", "relaxing", "pop"],
    "mood": ["upbeat", "calm", "happy", "for studying", "for a party", "quiet"],
    "playlist": ["workout", "morning", "dinner", "road trip", "favorites"],
    "input": ["hdmi one", "hdmi two", "the game console", "cable", "antenna"],
    "correction": ["the other one", "the kitchen", "tomorrow", "seven thirty", "not now",
                   "the living room", "call dad"],
    "reply": ["i'm on my way", "sounds good", "see you soon", "running late", "call me back"],
}
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
    ap.add_argument("--set", choices=["v1", "v2", "c"], default="v1",
                    help="v1: the first templates (ood-train-v1, ood-test-v1); v2: those and "
                         "MORE_TEMPLATES; c: CALIB_TEMPLATES alone")
    ap.add_argument("--templates", choices=["all", "even", "odd"], default="all",
                    help="every template, or every other one (to measure on templates "
                         "a model never saw)")
    a = ap.parse_args()
    every = {"v1": TEMPLATES, "v2": TEMPLATES + MORE_TEMPLATES, "c": CALIB_TEMPLATES}[a.set]
    templates = every if a.templates == "all" else every[a.templates == "odd"::2]
    FILL.update(MORE_FILL if a.set == "v2" else CALIB_FILL if a.set == "c" else {})
    rnd = random.Random(a.seed)
    seen = set(ISSUE_EXAMPLES)
    for path in a.exclude:
        with open(path) as f:
            seen.update(line.strip() for line in f)
    out = list(ISSUE_EXAMPLES) if a.with_issue_examples else []
    tries = 0
    while len(out) < a.count and tries < 200 * a.count:
        tries += 1
        s = fill(rnd.choice(templates), rnd)
        if s not in seen:
            seen.add(s)
            out.append(s)
    if len(out) < a.count:
        sys.exit(f"gen-ood: only {len(out)} distinct sentences of {a.count}")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
