/* placeholder: being written */ typedef int erd_placeholder_vix_store;
