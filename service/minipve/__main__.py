from minipve.cli import app

app(prog_name="minipve")
