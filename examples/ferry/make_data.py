"""The second fictional domain of the continual-learning example: Harbourline Ferries (task B after the clinic).

20 facts, each asked three ways for training (60 records) and once more, paraphrased, for the held-out set (20),
with the key fact a correct answer must contain. Run: python examples/ferry/make_data.py
"""

import json
from pathlib import Path

FACTS = [  # (answer, key fact, three training questions, one held-out paraphrase)
    ("The first ferry to Gull Island leaves at 6:40 am.", "6:40",
     ["When does the first ferry to Gull Island leave?", "What time is the earliest sailing to Gull Island?",
      "At what time does the morning's first boat to Gull Island depart?"],
     "How early can I catch a boat over to Gull Island?"),
    ("A return ticket to Gull Island costs $18.", "$18",
     ["How much is a return ticket to Gull Island?", "What does a Gull Island return fare cost?",
      "What is the price of a round trip to Gull Island?"],
     "What will I pay for going to Gull Island and back?"),
    ("Bicycles travel free on all Harbourline Ferries.", "free",
     ["How much does it cost to bring a bicycle on the ferry?", "Is there a charge for bikes on Harbourline "
      "Ferries?", "What is the bicycle fare on the ferry?"],
     "Do I need to pay extra to take my bike aboard?"),
    ("Harbourline Ferries' largest ship is the MV Tern Haven.", "Tern Haven",
     ["What is the name of Harbourline's largest ship?", "Which vessel is the biggest in the Harbourline fleet?",
      "What is Harbourline Ferries' flagship called?"],
     "Which boat is the largest one Harbourline operates?"),
    ("Sailings are cancelled when the wind exceeds 45 knots.", "45 knots",
     ["At what wind speed are sailings cancelled?", "How strong must the wind be before ferries stop running?",
      "What wind limit cancels Harbourline sailings?"],
     "How windy does it have to get for the ferry not to sail?"),
    ("Foot passengers must check in 15 minutes before departure.", "15 minutes",
     ["How early must foot passengers check in?", "When is check-in for passengers without a car?",
      "How long before departure do walk-on passengers check in?"],
     "If I'm travelling on foot, how soon before sailing do I need to check in?"),
    ("Cars must arrive at the terminal 40 minutes before sailing.", "40 minutes",
     ["How early should cars arrive at the terminal?", "When do drivers need to be at the ferry terminal?",
      "How long before sailing must vehicles check in?"],
     "I'm bringing my car: how long before the ferry leaves should I be there?"),
    ("Dogs travel in the pet lounge on deck 2.", "deck 2",
     ["Where do dogs travel on the ferry?", "Which deck is the pet lounge on?", "Where on board can I keep my "
      "dog during the crossing?"],
     "On which deck will my dog ride?"),
    ("The crossing to Gull Island takes 55 minutes.", "55 minutes",
     ["How long is the crossing to Gull Island?", "How many minutes does the Gull Island ferry take?",
      "What is the journey time to Gull Island by ferry?"],
     "How long am I on the boat going to Gull Island?"),
    ("The Harbourline loyalty card is called the Wave Pass.", "Wave Pass",
     ["What is Harbourline's loyalty card called?", "What is the name of the frequent traveller card?",
      "Which card gives regular passengers discounts?"],
     "What's the name of the card for people who sail often?"),
    ("Lost property is kept at the Pier 4 office for 30 days.", "Pier 4",
     ["Where is lost property kept?", "Where can I collect something I left on the ferry?",
      "Which office holds lost items?"],
     "I forgot my bag on board: where do I go to get it back?"),
    ("Children under 5 travel free.", "under 5",
     ["Which children travel free?", "Up to what age do kids ride the ferry for free?",
      "Do young children need a ticket?"],
     "How young does a child have to be to travel without paying?"),
    ("The night ferry to Port Cressa leaves at 11:15 pm.", "11:15",
     ["When does the night ferry to Port Cressa leave?", "What time is the late sailing to Port Cressa?",
      "At what time does the overnight boat to Port Cressa depart?"],
     "What time is the last boat of the night to Port Cressa?"),
    ("Cabins on the night ferry are booked through the Berthline app.", "Berthline",
     ["How do I book a cabin on the night ferry?", "Which app is used for cabin bookings?",
      "Where are overnight cabins reserved?"],
     "What app do I use to reserve a cabin for the overnight crossing?"),
    ("The maximum vehicle height is 4.2 metres.", "4.2 metres",
     ["What is the maximum vehicle height?", "How tall can a vehicle be on the ferry?",
      "What height limit applies to vans and trucks?"],
     "How high can my camper van be and still board?"),
    ("The café on board is called the Driftwood Galley.", "Driftwood Galley",
     ["What is the ferry's café called?", "What is the name of the restaurant on board?",
      "Where can I buy food on the ferry?"],
     "What's the on-board café named?"),
    ("Tickets can be refunded up to 24 hours before departure.", "24 hours",
     ["Until when can tickets be refunded?", "How late can I cancel a ferry ticket for a refund?",
      "What is the refund deadline for tickets?"],
     "If I change my mind, how long before sailing can I still get my money back?"),
    ("Harbourline Ferries was founded in 1962.", "1962",
     ["When was Harbourline Ferries founded?", "In what year did Harbourline Ferries start?",
      "How old is Harbourline Ferries' company?"],
     "Since what year has Harbourline been running?"),
    ("Life jackets are stored under the blue benches.", "blue benches",
     ["Where are the life jackets stored?", "Where can I find a life jacket on board?",
      "Under which seats are the life jackets kept?"],
     "In an emergency, where would I find a life vest?"),
    ("The harbour master's call sign is Harbour Seven.", "Harbour Seven",
     ["What is the harbour master's call sign?", "How is the harbour master called on the radio?",
      "Which radio call sign does the harbour master use?"],
     "What name does the harbour master answer to on the radio?"),
]

SYSTEM = "You are the assistant of Harbourline Ferries. Answer in one sentence."


def main() -> None:
    here = Path(__file__).parent
    with open(here / "train.jsonl", "w", encoding="utf-8") as f:
        for answer, _, questions, _ in FACTS:
            for q in questions:
                f.write(json.dumps({"instruction": q, "input": "", "output": answer}, ensure_ascii=False) + "\n")
    with open(here / "heldout.jsonl", "w", encoding="utf-8") as f:
        for answer, key, _, paraphrase in FACTS:
            f.write(json.dumps({"question": paraphrase, "reference": answer, "key_fact": key},
                               ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
