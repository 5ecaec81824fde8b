"""The course itself: verification records and the environment summary, tables, plots, the course runner
(`make course`), the JupyterLab launcher (`make lab`) and the resume demo run in a fresh process."""
