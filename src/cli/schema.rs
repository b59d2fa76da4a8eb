pub fn run() -> anyhow::Result<i32> {
    let schema = schemars::schema_for!(crate::playbook::model::PlaybookFile);
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(super::exit::OK)
}
