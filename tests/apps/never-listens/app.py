import time

print("never-listens: thinking before listening", flush=True)
time.sleep(3600)
