DROP TABLE project_data_sources;
