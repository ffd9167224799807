from graphql_api.cli.main import main

main()
