"""The agent's hands: log reading and parsing, windowing, metric reading, incident/runbook store, LangChain tools."""
