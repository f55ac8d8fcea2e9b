"""Word tables of the rule-based prompt parser: COCO synonyms, attribute, number and relation words."""

from __future__ import annotations

from rewardbench.coco import COCO_CLASSES

# GenEval's object_names.txt renames three COCO classes (djghosh13/geneval prompts/object_names.txt).
GENEVAL_NAMES: dict[str, str] = {"computer mouse": "mouse", "tv remote": "remote", "computer keyboard": "keyboard"}

# Synonyms -> COCO class. T2I-CompBench maps boy/girl/man/woman -> person, ship -> boat, painting ->
# picture (UniDet_eval/numeracy_eval.py); the rest are common words for the same COCO category.
SYNONYMS: dict[str, str] = {
    **GENEVAL_NAMES,
    **{w: "person" for w in (
        "man", "woman", "boy", "girl", "child", "kid", "baby", "lady", "gentleman", "guy", "people", "human",
        "astronaut", "player", "chef", "doctor", "teacher", "student", "worker", "soldier", "farmer", "dancer",
        "musician", "artist", "police officer", "nurse", "firefighter", "pilot", "athlete", "skier", "surfer",
        "skateboarder", "businessman", "businesswoman", "teenager", "toddler", "grandmother", "grandfather",
        "mother", "father", "son", "daughter", "friend", "couple", "family", "person", "woodcarver", "scientist",
        "photographer", "painter", "writer", "runner", "cyclist", "fisherman", "cowboy", "king", "queen",
        "prince", "princess", "bride", "groom", "mom", "dad", "grandma", "grandpa", "adult", "individual",
        "customer", "waiter", "waitress", "hiker", "swimmer", "gardener", "policeman", "fireman")},
    "bike": "bicycle", "motorbike": "motorcycle", "scooter": "motorcycle", "plane": "airplane",
    "aeroplane": "airplane", "jet": "airplane", "airliner": "airplane", "ship": "boat", "sailboat": "boat",
    "canoe": "boat", "kayak": "boat", "yacht": "boat", "taxi": "car", "cab": "car", "automobile": "car",
    "sedan": "car", "jeep": "car", "suv": "car", "lorry": "truck", "pickup truck": "truck", "van": "truck",
    "school bus": "bus", "locomotive": "train", "hydrant": "fire hydrant", "stoplight": "traffic light",
    "traffic signal": "traffic light", "puppy": "dog", "kitten": "cat", "kitty": "cat", "pony": "horse",
    "lamb": "sheep", "calf": "cow", "cattle": "cow", "bull": "cow", "ox": "cow", "teddy": "teddy bear",
    "polar bear": "bear", "grizzly": "bear", "grizzly bear": "bear",
    "parrot": "bird", "pigeon": "bird", "sparrow": "bird", "eagle": "bird", "owl": "bird", "duck": "bird",
    "swan": "bird", "goose": "bird", "chicken": "bird", "hen": "bird", "rooster": "bird", "seagull": "bird",
    "penguin": "bird", "crow": "bird", "flamingo": "bird", "peacock": "bird",
    "rucksack": "backpack", "purse": "handbag", "necktie": "tie", "luggage": "suitcase", "ski": "skis",
    "ball": "sports ball", "football": "sports ball", "soccer ball": "sports ball", "basketball": "sports ball",
    "tennis ball": "sports ball", "volleyball": "sports ball", "baseball": "sports ball", "bat": "baseball bat",
    "glove": "baseball glove", "racket": "tennis racket", "racquet": "tennis racket", "wineglass": "wine glass",
    "mug": "cup", "teacup": "cup", "coffee cup": "cup", "doughnut": "donut", "hotdog": "hot dog",
    "sofa": "couch", "armchair": "chair", "stool": "chair", "plant": "potted plant", "houseplant": "potted plant",
    "table": "dining table", "dinner table": "dining table", "kitchen table": "dining table",
    "television": "tv", "telivision": "tv", "tv set": "tv", "monitor": "tv", "notebook computer": "laptop",
    "computer": "laptop", "remote control": "remote", "phone": "cell phone", "cellphone": "cell phone",
    "smartphone": "cell phone", "mobile phone": "cell phone", "telephone": "cell phone", "fridge": "refrigerator",
    "microwave oven": "microwave", "stove": "oven", "novel": "book", "textbook": "book", "alarm clock": "clock",
    "wall clock": "clock", "hair dryer": "hair drier", "hairdryer": "hair drier", "blow dryer": "hair drier",
    "tooth brush": "toothbrush", "toilet bowl": "toilet", "skateboarder": "person", "scissor": "scissors",
}
SYNONYMS.update({c: c for c in COCO_CLASSES})

# GenEval's ten colours (djghosh13/geneval evaluation/evaluate_images.py COLORS) plus the other colour
# words T2I-CompBench's colour prompts use.
GENEVAL_COLORS: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black",
                                   "white")
COLORS: frozenset[str] = frozenset(GENEVAL_COLORS + (
    "gray", "grey", "silver", "gold", "golden", "beige", "tan", "violet", "maroon", "navy", "turquoise", "teal",
    "cyan", "magenta", "crimson", "ivory", "cream", "lavender", "indigo", "olive", "bronze", "copper", "khaki",
    "scarlet", "amber", "lime", "aqua", "blond", "blonde", "dark", "light", "bright", "pale"))
SHAPES: frozenset[str] = frozenset((
    "round", "square", "rectangular", "triangular", "circular", "oval", "oblong", "spherical", "cubic",
    "cylindrical", "conical", "pyramidal", "pentagonal", "hexagonal", "octagonal", "teardrop", "diamond",
    "crescent", "heart-shaped", "star-shaped", "diamond-shaped", "big", "small", "large", "tiny", "tall",
    "short", "long", "wide", "narrow", "thin", "thick", "flat", "curved", "huge", "giant", "little"))
TEXTURES: frozenset[str] = frozenset((
    "metallic", "wooden", "fluffy", "glass", "fabric", "plastic", "leather", "rubber", "furry", "soft",
    "hard", "smooth", "rough", "velvet", "silk", "silky", "woolen", "wool", "cotton", "ceramic", "stone",
    "marble", "paper", "steel", "iron", "metal", "wood", "denim", "knitted", "shiny", "glossy", "matte",
    "fuzzy", "porcelain", "concrete", "brick", "crystal", "golden", "feathery", "woven", "lace", "suede"))
OTHER_ADJECTIVES: frozenset[str] = frozenset((
    "old", "new", "young", "beautiful", "cute", "happy", "sad", "cozy", "colorful", "colourful", "wild",
    "modern", "vintage", "antique", "fresh", "ripe", "empty", "full", "open", "closed", "broken", "wet", "dry",
    "hot", "cold", "warm", "delicious", "elegant", "fancy", "simple", "plain", "ornate", "clean", "dirty",
    "favorite", "favourite", "lush", "busy", "quiet", "sturdy", "fluffy", "striped", "spotted", "checkered"))

# Words that give a count (the one table: the parser reads counts from it, and T2I-CompBench numeracy
# counts an object as numbered when its determiner is one of them).
NUMBER_WORDS: dict[str, int] = {
    "a": 1, "an": 1, "one": 1, "single": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "pair": 2, "couple": 2,
}
DETERMINERS = frozenset(("the", "this", "that", "these", "those", "his", "her", "their", "its", "my", "your",
                         "our", "some", "each", "every", "another", "several", "many", "few", "any"))
# Canonical relation of each phrase. T2I-CompBench: UniDet_eval/2D_spatial_eval.py vocab_spatial;
# GenEval: prompts/create_prompts.py positions ("left of", "right of", "above", "below").
RELATIONS: dict[str, str] = {
    "on the left of": "left of", "on the left side of": "left of", "to the left of": "left of",
    "left of": "left of", "on the right of": "right of", "on the right side of": "right of",
    "to the right of": "right of", "right of": "right of", "on the top of": "above", "on top of": "above",
    "above": "above", "over": "above", "on the bottom of": "below", "on bottom of": "below",
    "at the bottom of": "below", "below": "below", "under": "below", "underneath": "below", "beneath": "below",
    "near": "near", "next to": "next to", "beside": "beside", "on side of": "on side of",
    "on the side of": "on side of", "close to": "near", "nearby": "near",
}
SPATIAL_RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below", "near", "next to", "beside",
                                      "on side of")
GENEVAL_POSITIONS: tuple[str, ...] = SPATIAL_RELATIONS[:4]  # the relations GenEval's position prompts use
PREPOSITIONS = frozenset(("of", "in", "on", "at", "to", "from", "by", "into", "onto", "behind", "inside",
                          "for", "across", "through", "against", "around", "among", "between", "along",
                          "toward", "towards", "within", "without", "outside", "upon", "like", "as", "via",
                          "off", "up", "down", "out", "after", "before", "during", "while", "front"))
CONJUNCTIONS = frozenset(("and", "or", "but", "with", "while", "that", "which", "who", "where", "when", "whose",
                          "so", "then", "&", "plus", "nor"))
VERBS = frozenset(("is", "are", "was", "were", "be", "been", "being", "has", "have", "had", "sits", "sit",
                   "stands", "stand", "lies", "lie", "lay", "rests", "hangs", "hang", "holds", "hold", "looks",
                   "look", "can", "could", "will", "would", "should", "does", "do", "did", "appears", "seems",
                   "provide", "provides", "gets", "makes", "make", "keeps", "keep", "contains", "covers",
                   "there", "it", "they", "he", "she", "we", "i", "you", "them", "him", "featuring", "features",
                   "feature", "very", "too", "also", "just", "only", "not", "no", "all", "both", "together",
                   "each", "other", "others", "one's", "mix", "mixes", "display", "displays"))
FRAMES = ("a photo of", "a photograph of", "an image of", "a picture of", "a painting of", "a drawing of",
          "a rendering of", "a render of", "an illustration of", "a close-up of", "a closeup of")

IRREGULAR_PLURALS = {"people": "person", "men": "man", "women": "woman", "children": "child", "mice": "mouse",
                     "knives": "knife", "teeth": "tooth", "feet": "foot", "geese": "goose", "oxen": "ox",
                     "leaves": "leaf", "shelves": "shelf", "wolves": "wolf", "calves": "calf", "loaves": "loaf",
                     "halves": "half", "scarves": "scarf", "lives": "life", "wives": "wife", "thieves": "thief",
                     "cacti": "cactus", "fungi": "fungus", "dice": "die", "sheep": "sheep", "fish": "fish",
                     "deer": "deer", "skis": "skis", "scissors": "scissors", "pants": "pants", "jeans": "jeans",
                     "shorts": "shorts", "clothes": "clothes",
                     "chopsticks": "chopsticks", "goldfish": "goldfish", "series": "series", "species": "species",
                     "bus": "bus", "glass": "glass", "grass": "grass", "dress": "dress", "cactus": "cactus",
                     "octopus": "octopus", "hippopotamus": "hippopotamus", "bonus": "bonus", "news": "news",
                     "lens": "lens", "gas": "gas", "canvas": "canvas", "mattress": "mattress", "tennis": "tennis",
                     "jewelry": "jewelry", "cutlery": "cutlery",
                     # GenEval's counting template writes a class name ending in "s" with "es" added
                     # (djghosh13/geneval prompts/create_prompts.py make_plural), as Flow-GRPO's GenEval prompts do
                     "skises": "skis", "scissorses": "scissors"}


